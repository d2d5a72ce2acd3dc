/* Dashboards: Chart.js charts from the page's JSON (#chart-data), and on the supervisor's
   day the live counters, pushed by the server as Server-Sent Events (EventSource
   reconnects by itself; each message carries the whole day's counters). */
(function () {
  "use strict";
  var dataEl = document.getElementById("chart-data");
  if (!dataEl || typeof Chart === "undefined") { return; }
  var data = JSON.parse(dataEl.textContent);
  var lang = document.documentElement.lang || "es";
  var money = new Intl.NumberFormat("es-MX", {style: "currency", currency: "MXN"});
  var count = new Intl.NumberFormat(lang === "en" ? "en-US" : "es-MX");
  var charts = {};

  function chart(id, config) {
    var canvas = document.getElementById(id);
    if (canvas) { charts[id] = new Chart(canvas, config); }
  }

  if (data.aging) {
    chart("chart-aging", {type: "bar", data: {labels: data.aging.labels, datasets: [
      {label: data.aging.title, data: data.aging.balance, backgroundColor: "#3c71b8"}]},
      options: {plugins: {legend: {display: true}}}});
  }
  if (data.days) {
    chart("chart-days", {data: {labels: data.days.labels, datasets: [
      {type: "bar", label: data.days.collected_label, data: data.days.collected, yAxisID: "y",
       backgroundColor: "#2f9e6a"},
      {type: "line", label: data.days.activities_label, data: data.days.activities, yAxisID: "y1",
       borderColor: "#c2571a"},
      {type: "line", label: data.days.contacts_label, data: data.days.contacts, yAxisID: "y1",
       borderColor: "#7a4bb0"}]},
      options: {scales: {y: {position: "left"}, y1: {position: "right", grid: {drawOnChartArea: false}}}}});
  }
  if (data.hours) {
    chart("chart-hours", {type: "bar", data: {labels: data.hours.labels, datasets: [
      {label: data.hours.label, data: data.hours.activities, backgroundColor: "#3c71b8"}]}});
  }

  var counters = document.getElementById("day-counters");
  var stream = counters && counters.getAttribute("data-stream");
  if (!stream || typeof EventSource === "undefined") { return; }
  var status = document.getElementById("live-status");

  function cell(text, numeric) {
    var td = document.createElement("td");
    td.textContent = text;
    if (numeric) { td.className = "num"; }
    return td;
  }

  function show(day) {
    counters.querySelectorAll("[data-key]").forEach(function (el) {
      var value = day.totals[el.getAttribute("data-key")];
      el.textContent = el.hasAttribute("data-money") ? money.format(Number(value)) : count.format(value);
    });
    if (charts["chart-hours"]) {
      charts["chart-hours"].data.datasets[0].data = day.hours.map(function (h) { return h.activities; });
      charts["chart-hours"].update();
    }
    var body = document.querySelector("#day-agents tbody");
    if (body && day.agents.length) {
      body.replaceChildren.apply(body, day.agents.map(function (a) {
        var tr = document.createElement("tr");
        tr.setAttribute("data-agent", a.agent_id);
        tr.append(cell(data.agents[a.agent_id] || "#" + a.agent_id), cell(count.format(a.activities), true),
                  cell(count.format(a.contacts), true), cell(count.format(a.promises_made), true),
                  cell(money.format(Number(a.amount_recovered)), true));
        return tr;
      }));
    }
  }

  var source = new EventSource(stream);
  source.addEventListener("counters", function (event) {
    show(JSON.parse(event.data));
    if (status) { status.setAttribute("data-live", "on"); }
  });
  source.onerror = function () { if (status) { status.setAttribute("data-live", "reconnecting"); } };
})();
