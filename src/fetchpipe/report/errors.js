(function () {
  var seen = [];
  function say(text) {
    seen.push(text);
    var box = document.getElementById("errors");
    if (box) { box.textContent = seen.join("\n"); box.setAttribute("data-count", String(seen.length)); }
  }
  window.addEventListener("error", function (e) { say("error: " + e.message); });
  document.addEventListener("securitypolicyviolation", function (e) { say("blocked: " + e.blockedURI); });
  window.addEventListener("unhandledrejection", function (e) { say("rejection: " + e.reason); });
  var original = console.error;
  console.error = function () { say("console: " + Array.prototype.join.call(arguments, " ")); original.apply(console, arguments); };
})();
