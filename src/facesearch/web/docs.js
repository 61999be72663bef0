// The interactive API docs: Swagger UI from the installed swagger-ui-bundle package, served by
// this server (nothing is loaded from another origin), reading this server's /openapi.json.
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
  });
});
