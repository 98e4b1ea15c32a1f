// Refresh the status bar (queue depth, drain rate and time left, link, camera, free space) every two seconds.
// Its wording and colours come from the server (edge.web.status_bar), as when the page was drawn.
(function () {
  function pill(id, p) {
    var el = document.getElementById(id);
    el.className = "pill " + p.css;
    el.textContent = p.text;
  }
  function refresh() {
    fetch("/status.json", {cache: "no-store"}).then(function (r) { return r.json(); }).then(function (s) {
      document.getElementById("queue-depth").textContent = s.queue_depth;
      document.getElementById("free-mb").textContent = s.free_mb;
      document.getElementById("drain").hidden = !(s.queue_depth && s.drain.rate);
      document.getElementById("drain-rate").textContent = s.drain.rate;
      document.getElementById("drain-eta").textContent = s.bar.drain_eta;
      pill("link-state", s.bar.link);
      pill("camera-state", s.bar.camera);
    }).catch(function () {});
  }
  setInterval(refresh, 2000);
})();
