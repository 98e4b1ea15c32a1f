// DermKiosk kiosk page script: status bar, idle sign-out, the digit pad and letter keyboard, the body map,
// and capture forms posted in place (no reload, no scroll to the top). Every form also works without it.
(function () {
  "use strict";
  var body = document.body;
  var signedIn = body.dataset.signedIn === "1";
  var idleMs = (parseInt(body.dataset.idleS, 10) || 180) * 1000;
  var csrf = (document.querySelector("meta[name=csrf-token]") || {}).content || "";
  var lastTouch = Date.now(), lastAlive = Date.now(), leaving = false;

  function $(id) { return document.getElementById(id); }

  // ---------------------------------------------------------------- idle: sign out and clear the screen
  function clearAndLeave(why) {
    if (leaving) { return; }
    leaving = true;
    var main = $("main");
    if (main) { main.textContent = ""; }                      // nothing of the patient stays on the screen
    var kbd = $("kbd");
    if (kbd) { kbd.hidden = true; }
    var fd = new FormData();
    fd.append("csrf_token", csrf);
    fd.append("why", why);
    fetch(body.dataset.signout, {method: "POST", body: fd, credentials: "same-origin", redirect: "manual"})
      .catch(function () {}).then(function () { location.replace(body.dataset.home); });
  }
  function touched() {
    lastTouch = Date.now();
    if (signedIn && lastTouch - lastAlive > 20000) {          // the server counts activity by requests
      lastAlive = lastTouch;
      var fd = new FormData();
      fd.append("csrf_token", csrf);
      fetch(body.dataset.alive, {method: "POST", body: fd, credentials: "same-origin"}).catch(function () {});
    }
  }
  document.addEventListener("pointerdown", touched, true);
  document.addEventListener("keydown", touched, true);
  if (signedIn) {
    setInterval(function () { if (Date.now() - lastTouch > idleMs) { clearAndLeave("idle"); } }, 1000);
  }

  // ---------------------------------------------------------------- status bar
  function pill(id, p) {
    var el = $(id);
    if (el) { el.className = "pill " + p.css; el.textContent = p.text; }
  }
  function refresh() {
    fetch(body.dataset.status, {cache: "no-store", credentials: "same-origin"})
      .then(function (r) { return r.json(); }).then(function (s) {
        if (signedIn && !s.signed_in) { clearAndLeave("idle"); return; }
        $("queue-depth").textContent = s.queue_depth;
        $("free-mb").textContent = s.free_mb;
        $("drain").hidden = !(s.queue_depth && s.drain.rate);
        $("drain-rate").textContent = s.drain.rate;
        $("drain-eta").textContent = s.bar.drain_eta;
        pill("link-state", s.bar.link);
        pill("camera-state", s.bar.camera);
      }).catch(function () {});
  }
  setInterval(refresh, 2000);

  // ---------------------------------------------------------------- fields typed on the pad or the keyboard
  var target = null;
  function groups(input) {
    return (input.dataset.group || "").split(",").filter(Boolean).map(Number);
  }
  function grouped(digits, sizes) {
    var out = [], at = 0;
    sizes.forEach(function (n) { if (at < digits.length) { out.push(digits.slice(at, at + n)); at += n; } });
    return out.join(" ");
  }
  function setTarget(input) {
    if (target) { target.classList.remove("target"); }
    target = input;
    if (!input) { return; }
    input.classList.add("target");
    var kbd = $("kbd");
    if (input.hasAttribute("data-kbd")) {
      kbd.hidden = false;
      $("kbd-label").textContent = labelOf(input) + ":";
      echo();
    } else if (kbd) {
      kbd.hidden = true;
    }
  }
  function labelOf(input) {
    var l = input.id && document.querySelector("label[for='" + input.id + "']");
    return (l && l.textContent) || input.getAttribute("aria-label") || input.placeholder || "";
  }
  function echo() { if (target && $("kbd-echo")) { $("kbd-echo").textContent = target.value; } }
  function changed(input) {
    input.dispatchEvent(new Event("input", {bubbles: true}));
    var radio = input.dataset.check && $(input.dataset.check);
    if (radio && input.value) { radio.checked = true; }
    if (input.dataset.clears && input.value) {           // typed: the quick picks of the same field are off
      document.querySelectorAll("input[name='" + input.dataset.clears + "']").forEach(function (r) { r.checked = false; });
    }
    echo();
  }
  function padInput(form) {
    if (target && target.hasAttribute("data-pad") && (!form || form.contains(target))) { return target; }
    var first = (form || document).querySelector("input[data-pad]");
    if (first) { setTarget(first); }
    return first;
  }
  function pressPad(input, key) {
    var sizes = groups(input);
    if (sizes.length) {
      var total = sizes.reduce(function (a, b) { return a + b; }, 0);
      var digits = input.value.replace(/\D/g, "");
      if (key === "back") { digits = digits.slice(0, -1); }
      else if (/^[0-9]$/.test(key) && digits.length < total) { digits += key; }
      input.value = grouped(digits, sizes);
      changed(input);
      if (digits.length === total && /^[0-9]$/.test(key) && input.dataset.next && $(input.dataset.next)) {
        setTarget($(input.dataset.next));
      }
      return;
    }
    typeInto(input, key);
  }
  function typeInto(input, key) {
    var max = parseInt(input.getAttribute("maxlength"), 10) || 200;
    if (key === "back") { input.value = input.value.slice(0, -1); }
    else if (key === "." && input.value.indexOf(".") >= 0) { return; }
    else if (input.value.length < max) { input.value += key; }
    changed(input);
  }
  document.addEventListener("focusin", function (e) {
    var t = e.target;
    if (t.matches && t.matches("input[data-pad], input[data-kbd]")) { setTarget(t); }
  });
  document.addEventListener("change", function (e) {   // a quick pick chosen: the typed alternative is cleared
    var t = e.target;
    if (t.type === "radio") {
      document.querySelectorAll("input[data-clears='" + t.name + "']").forEach(function (i) { i.value = ""; });
    }
  });
  document.addEventListener("pointerdown", function (e) {
    var kbd = $("kbd");
    if (kbd && !kbd.hidden && !kbd.contains(e.target) && !(e.target.matches && e.target.matches("input[data-kbd]"))) {
      kbd.hidden = true;
    }
  });
  var upper = true;
  document.addEventListener("click", function (e) {
    var key = e.target.closest && e.target.closest("[data-key]");
    if (key) {
      e.preventDefault();
      var k = key.dataset.key;
      if (key.closest("#kbd")) {
        if (!target) { return; }
        if (k === "done") { $("kbd").hidden = true; return; }
        if (k === "shift") {
          upper = !upper;
          key.textContent = upper ? "abc" : "ABC";
          key.setAttribute("aria-pressed", upper ? "false" : "true");
          document.querySelectorAll("#kbd .key").forEach(function (b) {
            if (/^[A-Za-z]$/.test(b.dataset.key)) {
              b.dataset.key = upper ? b.dataset.key.toUpperCase() : b.dataset.key.toLowerCase();
              b.textContent = b.dataset.key;
            }
          });
          return;
        }
        typeInto(target, k);
        return;
      }
      var input = padInput(key.closest("form"));
      if (input) { pressPad(input, k === " " && input.dataset.group ? "" : k); }
      return;
    }
    var today = e.target.closest && e.target.closest("[data-today]");
    if (today) {
      var d = new Date(), field = $(today.dataset.today);
      field.value = ("0" + d.getDate()).slice(-2) + " " + ("0" + (d.getMonth() + 1)).slice(-2) + " " + d.getFullYear();
      changed(field);
      setTarget(field);
      return;
    }
    var sw = e.target.closest && e.target.closest("[data-switch]");
    if (sw) {
      var ref = $(sw.dataset.switch), toLetters = ref.hasAttribute("data-pad");
      if (toLetters) {
        ref.removeAttribute("data-pad"); ref.setAttribute("data-kbd", "");
        ref.dataset.savedGroup = ref.dataset.group || ""; delete ref.dataset.group;
      } else {
        ref.removeAttribute("data-kbd"); ref.setAttribute("data-pad", "");
        if (ref.dataset.savedGroup) { ref.dataset.group = ref.dataset.savedGroup; }
      }
      ref.value = "";
      sw.textContent = toLetters ? "Digits" : "Letters";
      sw.setAttribute("aria-pressed", toLetters ? "true" : "false");
      setTarget(ref);
      return;
    }
    var chip = e.target.closest && e.target.closest("[data-detail]");
    if (chip) {
      var detail = $("f-detail");
      detail.value = chip.dataset.detail;
      changed(detail);
      return;
    }
    var region = e.target.closest && e.target.closest(".region");
    if (region) { pickRegion(region, e); }
  });

  // ---------------------------------------------------------------- body map
  function pickRegion(region, e) {
    var svg = region.ownerSVGElement, maps = svg.closest(".maps");
    var w = Number(maps.dataset.width), h = Number(maps.dataset.height), band = Number(maps.dataset.band);
    var box = region.getBBox(), x = box.x + box.width / 2, y = box.y + box.height / 2;
    if (e && e.clientX !== undefined && (e.clientX || e.clientY)) {
      var pt = svg.createSVGPoint();
      pt.x = e.clientX; pt.y = e.clientY;
      var p = pt.matrixTransform(svg.getScreenCTM().inverse());
      x = Math.min(Math.max(p.x, 0), w); y = Math.min(Math.max(p.y, 0), h);
    }
    var side = svg.dataset.side, lat = region.dataset.lat;
    if (lat === "auto") {
      if (Math.abs(x - w / 2) <= band) { lat = "midline"; }
      else { lat = (x < w / 2) === (side === "front") ? "right" : "left"; }   // front: their right on your left
    }
    document.querySelectorAll(".region.on").forEach(function (r) { r.classList.remove("on"); r.setAttribute("aria-pressed", "false"); });
    region.classList.add("on");
    region.setAttribute("aria-pressed", "true");
    var site = region.dataset.site;
    $("f-site").value = site;
    $("f-map_side").value = side;
    $("f-map_x").value = (x / w).toFixed(3);
    $("f-map_y").value = (y / h).toFixed(3);
    document.querySelectorAll(".maps .mark").forEach(function (m) {
      var mine = m.ownerSVGElement === svg;
      m.setAttribute("visibility", mine ? "visible" : "hidden");
      if (mine) { m.setAttribute("cx", x); m.setAttribute("cy", y); }
    });
    var radio = document.querySelector("input[name=laterality][value='" + lat + "']");
    if (radio) { radio.checked = true; }
    $("site-readout").textContent = region.getAttribute("aria-label");
    document.querySelectorAll(".detail-chips").forEach(function (g) { g.hidden = g.dataset.forSite !== site; });
  }
  document.addEventListener("keydown", function (e) {
    var region = e.target.closest && e.target.closest(".region");
    if (region && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); pickRegion(region, null); }
  });

  // ---------------------------------------------------------------- capture forms posted in place
  function swap(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    doc.querySelectorAll("[data-swap][id]").forEach(function (fresh) {
      var old = $(fresh.id);
      if (old) { old.replaceWith(document.importNode(fresh, true)); }
    });
    var flashes = doc.getElementById("flashes");
    if (flashes) { $("flashes").replaceWith(document.importNode(flashes, true)); }
    document.title = doc.title;
  }
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.hasAttribute("data-inplace") || !window.fetch) { return; }
    e.preventDefault();
    var fd = new FormData(form);
    if (e.submitter && e.submitter.name) { fd.append(e.submitter.name, e.submitter.value); }
    var busy = form.closest("#panel") || form;
    busy.setAttribute("aria-busy", "true");
    form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    if (form.querySelector("#capture")) { $("capture").textContent = "Taking the photograph..."; }
    fetch(form.action, {method: "POST", body: fd, credentials: "same-origin"}).then(function (r) {
      var url = new URL(r.url);
      if (!r.ok || url.pathname.indexOf("/shoot/") < 0) { location.assign(r.url); return null; }
      return r.text().then(function (html) {
        swap(html);
        history.replaceState(null, "", url.pathname + url.search);
      });
    }).catch(function () { form.submit(); });
  });

  // "Send with a reason" opened: bring its reasons into view inside the panel (the screen itself never scrolls)
  document.addEventListener("toggle", function (e) {
    var d = e.target;
    if (d.matches && d.matches("details.override") && d.open) {
      var panel = d.closest("#panel");
      if (panel) { panel.scrollTop = panel.scrollHeight; }
    }
  }, true);

  // start with the first empty pad field as the pad's target
  var first = document.querySelector("input[data-pad][aria-invalid=true]") ||
    Array.prototype.filter.call(document.querySelectorAll("input[data-pad]"), function (i) { return !i.value; })[0] ||
    document.querySelector("input[data-pad]");
  if (first) { setTarget(first); }
})();
