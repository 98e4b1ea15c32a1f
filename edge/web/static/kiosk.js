// Refresh the status bar (queue depth, drain rate and time left, link, camera, free space) every two seconds.
(function () {
  // Seconds left of the backlog, as the page's "eta" filter writes it.
  function eta(s) {
    if (s === null || s === undefined) { return "-"; }
    if (s < 60) { return s + " s"; }
    if (s < 3600) { return Math.round(s / 60) + " min"; }
    return (s / 3600).toFixed(1) + " h";
  }
  function refresh() {
    fetch("/status.json", {cache: "no-store"}).then(function (r) { return r.json(); }).then(function (s) {
      document.getElementById("queue-depth").textContent = s.queue_depth;
      document.getElementById("free-mb").textContent = s.free_mb;
      var drain = document.getElementById("drain");
      drain.hidden = !(s.queue_depth && s.drain.rate);
      document.getElementById("drain-rate").textContent = s.drain.rate;
      document.getElementById("drain-eta").textContent = eta(s.drain.eta_s);
      var link = document.getElementById("link-state");
      // connected, but the centre's ingest said it is offline: the kiosk holds its cases
      var held = s.link.connected && s.link.centre === "offline";
      link.className = "pill " + (held ? "warn" : (s.link.connected ? "ok" : "bad"));
      link.textContent = held ? "Centre offline: cases are kept here and sent when it is back" :
        (s.link.connected ? "Connected to centre" : "Offline: cases are kept and sent later");
      var cam = document.getElementById("camera-state");
      cam.className = "pill " + (s.camera ? "ok" : "bad");
      cam.textContent = s.camera ? "Camera ready" : "Camera not connected";
    }).catch(function () {});
  }
  setInterval(refresh, 2000);
})();
