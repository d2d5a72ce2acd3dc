// Starts Swagger UI on /api/v1/docs from the container's data attributes (the page has
// no inline script: the Content-Security-Policy allows none).
(function () {
  "use strict";
  var container = document.getElementById("swagger-ui-container");
  var config = {url: container.dataset.specUrl, dom_id: "#swagger-ui-container",
                validatorUrl: null};
  var extra = JSON.parse(container.dataset.config || "{}");
  Object.keys(extra).forEach(function (name) { config[name] = extra[name]; });
  window.ui = SwaggerUIBundle(config);
})();
