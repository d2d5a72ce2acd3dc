// The "Documentos" tab: files dropped or chosen go straight to the object store.
// For each file: ask the gateway for a presigned POST (/api/v1/documents/uploads), send the
// file there with a progress bar, then ask for the completion (the service checks size and
// type and keeps it as a version, or deletes it and says why). When all are done the tab
// reloads. Handlers are delegated from the document once, so htmx swaps of the tab keep them.
(function () {
  if (window.recaudoDocumentsTab) return;
  window.recaudoDocumentsTab = true;

  function form() { return document.getElementById("document-upload"); }

  function api(url, body, csrf) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json"},
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = data.error || {}, fields = error.fields || {}, first = Object.keys(fields)[0];
          throw new Error(first ? [].concat(fields[first]).join(" ") : (error.message || response.statusText));
        }
        return data;
      });
    });
  }

  function sendToStore(ticket, file, bar) {
    return new Promise(function (resolve, reject) {
      var data = new FormData();
      Object.keys(ticket.fields).forEach(function (name) { data.append(name, ticket.fields[name]); });
      data.append("file", file);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", ticket.url);
      xhr.upload.onprogress = function (event) {
        if (event.lengthComputable) bar.value = Math.round(100 * event.loaded / event.total);
      };
      xhr.onload = function () {
        if (xhr.status >= 200 && xhr.status < 300) resolve(); else reject(new Error("HTTP " + xhr.status));
      };
      xhr.onerror = function () { reject(new Error("network")); };
      xhr.send(data);
    });
  }

  function uploadOne(f, file) {
    var item = document.createElement("li"), bar = document.createElement("progress"),
        label = document.createElement("span");
    bar.max = 100; bar.value = 0;
    label.textContent = file.name + " · " + f.dataset.msgUploading;
    item.appendChild(label); item.appendChild(bar);
    document.getElementById("upload-list").appendChild(item);
    var request = {debtor_id: Number(f.dataset.debtorId), filename: file.name, size: file.size,
                   category: f.querySelector("[name=category]").value};
    var account = f.querySelector("[name=account_id]").value;
    if (account) request.account_id = Number(account);
    var base = f.dataset.api;
    return api(base, request, f.dataset.csrf).then(function (ticket) {
      return sendToStore(ticket, file, bar).then(function () {
        label.textContent = file.name + " · " + f.dataset.msgChecking;
        return api(base + "/" + ticket.upload_id + "/complete", {}, f.dataset.csrf);
      });
    }).then(function () {
      bar.value = 100; item.className = "done";
      label.textContent = file.name + " · " + f.dataset.msgDone;
      return true;
    }, function (error) {
      item.className = "failed"; item.setAttribute("role", "alert");
      label.textContent = file.name + " · " + f.dataset.msgFailed + ": " + error.message;
      return false;
    });
  }

  function uploadAll(files) {
    var f = form();
    if (!f || !files.length) return;
    Promise.all(Array.prototype.map.call(files, function (file) { return uploadOne(f, file); }))
      .then(function (results) {
        if (results.every(Boolean) && window.htmx) {
          htmx.ajax("GET", f.dataset.refresh, {target: "#debtor-tabs"});
        }
      });
  }

  document.addEventListener("change", function (event) {
    if (event.target.id === "doc-files") { uploadAll(event.target.files); event.target.value = ""; }
  });
  document.addEventListener("dragover", function (event) {
    var zone = event.target.closest && event.target.closest("#drop-zone");
    if (zone) { event.preventDefault(); zone.classList.add("dragging"); }
  });
  document.addEventListener("dragleave", function (event) {
    var zone = event.target.closest && event.target.closest("#drop-zone");
    if (zone) zone.classList.remove("dragging");
  });
  document.addEventListener("drop", function (event) {
    var zone = event.target.closest && event.target.closest("#drop-zone");
    if (zone) { event.preventDefault(); zone.classList.remove("dragging"); uploadAll(event.dataTransfer.files); }
  });
  document.addEventListener("click", function (event) {
    var share = event.target.closest && event.target.closest(".doc-share");
    if (share) {
      var select = document.getElementById("share-document");
      if (select) select.value = share.dataset.documentId;
    }
  });
})();
