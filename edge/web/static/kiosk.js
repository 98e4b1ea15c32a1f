// Refresh the status bar (queue depth, link, camera, free space) every two seconds.
(function () {
  function refresh() {
    fetch("/status.json", {cache: "no-store"}).then(function (r) { return r.json(); }).then(function (s) {
      document.getElementById("queue-depth").textContent = s.queue_depth;
      document.getElementById("free-mb").textContent = s.free_mb;
      var link = document.getElementById("link-state");
      link.className = "pill " + (s.link.connected ? "ok" : "bad");
      link.textContent = s.link.connected ? "Connected to centre" : "Offline: cases are kept and sent later";
      var cam = document.getElementById("camera-state");
      cam.className = "pill " + (s.camera ? "ok" : "bad");
      cam.textContent = s.camera ? "Camera ready" : "Camera not connected";
    }).catch(function () {});
  }
  setInterval(refresh, 2000);
})();
