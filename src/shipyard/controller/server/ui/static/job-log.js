// A job's live log tail. EventSource reconnects by itself and sends Last-Event-ID (the last line's id),
// so the controller resumes after the last line this page has. Lines are added as text, never as HTML.
(function () {
  var log = document.getElementById("log");
  var state = document.getElementById("log-state");
  if (!log || !window.EventSource || log.dataset.finished) { return; }
  var source = new EventSource(log.dataset.events);
  source.addEventListener("log", function (event) {
    var line = document.createElement("span");
    line.dataset.id = event.lastEventId;
    line.textContent = event.data + "\n";
    log.appendChild(line);
    state.textContent = "";
  });
  source.addEventListener("end", function () {
    state.textContent = "The job finished.";
    source.close();
  });
  source.onerror = function () { state.textContent = "Reconnecting…"; };
})();
