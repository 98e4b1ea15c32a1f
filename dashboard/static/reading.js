/* The referral review page: zoom and pan on every view (vendored @panzoom/panzoom), keyboard shortcuts.
   No inline script (the page's CSP allows same-origin scripts only); Panzoom moves images through the CSSOM. */
(function () {
  "use strict";
  const viewers = [];
  let active = null;

  function fullScale(img) {
    // screen pixels the image's content takes now (object-fit: contain), so that this scale shows 1:1
    const w = img.naturalWidth || Number(img.getAttribute("width")) || 1;
    const h = img.naturalHeight || Number(img.getAttribute("height")) || 1;
    const shown = Math.min(img.clientWidth, img.clientHeight * w / h) || img.clientWidth || 1;
    return Math.max(w / shown, 1);
  }

  function setup(card) {
    const box = card.querySelector(".viewer");
    const img = box.querySelector("img");
    const level = card.querySelector(".zoom-level");
    const pz = Panzoom(img, { minScale: 1, maxScale: 8, step: 0.35, contain: "outside", cursor: "grab" });
    const v = { card, box, img, pz };
    function limits() {
      const full = fullScale(img);
      pz.setOptions({ maxScale: Math.max(4, full * 2) });
      return full;
    }
    function show() {
      const scale = pz.getScale();
      const full = fullScale(img);
      box.dataset.scale = scale.toFixed(3);
      level.textContent = scale <= 1.001 ? "fit" : Math.round(100 * scale / full) + " % of full resolution";
    }
    v.zoomIn = () => { limits(); pz.zoomIn(); };
    v.zoomOut = () => pz.zoomOut();
    v.fit = () => pz.reset();
    v.full = () => { const full = limits(); pz.zoom(full, { animate: false }); };
    img.addEventListener("panzoomchange", show);
    img.addEventListener("load", () => { limits(); show(); });
    box.addEventListener("wheel", (e) => { limits(); select(v, true); pz.zoomWithWheel(e); });
    box.addEventListener("pointerdown", () => select(v, true));
    box.addEventListener("focus", () => select(v));
    card.querySelector(".zoom-in").addEventListener("click", () => { select(v); v.zoomIn(); });
    card.querySelector(".zoom-out").addEventListener("click", () => { select(v); v.zoomOut(); });
    card.querySelector(".zoom-fit").addEventListener("click", () => { select(v); v.fit(); });
    card.querySelector(".zoom-full").addEventListener("click", () => { select(v); v.full(); });
    if (img.complete) { limits(); show(); }
    viewers.push(v);
  }

  function select(v, focus) {
    if (focus && document.activeElement !== v.box) v.box.focus({ preventScroll: true });
    if (active) active.box.classList.remove("active");
    active = v;
    v.box.classList.add("active");
    const lesion = v.card.closest(".lesion");
    if (lesion) setLesion(lesion, false);
  }

  const lesions = Array.from(document.querySelectorAll(".lesion"));
  let current = null;

  function setLesion(section, scroll) {
    if (current) current.classList.remove("current");
    current = section;
    section.classList.add("current");
    if (scroll) {
      section.scrollIntoView({ block: "start" });
      section.focus({ preventScroll: true });
      const first = viewers.find((v) => section.contains(v.card));
      if (first) select(first);
    }
  }

  function moveLesion(step) {
    const i = current ? lesions.indexOf(current) : -1;
    const next = lesions[Math.min(Math.max(i + step, 0), lesions.length - 1)];
    if (next) setLesion(next, true);
  }

  function moveImage(step) {
    const pool = current ? viewers.filter((v) => current.contains(v.card)) : viewers;
    if (!pool.length) return;
    const i = active ? pool.indexOf(active) : -1;
    const v = pool[(i + step + pool.length) % pool.length];
    select(v);
    v.box.focus({ preventScroll: false });
  }

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    const v = active || viewers[0];
    const keys = {
      "j": () => moveLesion(1), "k": () => moveLesion(-1),
      "+": () => v && v.zoomIn(), "=": () => v && v.zoomIn(), "-": () => v && v.zoomOut(),
      "0": () => v && v.fit(), "1": () => v && v.full(),
      "]": () => moveImage(1), "[": () => moveImage(-1),
      "r": () => {
        const section = current || lesions[0];
        const field = section && section.querySelector(".report select, .report textarea");
        if (field) { field.scrollIntoView({ block: "center" }); field.focus(); }
      },
      "n": () => { const a = document.getElementById("next-referral"); if (a) window.location.assign(a.href); },
      "?": () => { const d = document.getElementById("shortcuts"); d.open = !d.open; },
    };
    const act = keys[e.key];
    if (act) { e.preventDefault(); act(); }
  });

  document.querySelectorAll(".viewer-card").forEach(setup);
  const target = window.location.hash && document.getElementById(window.location.hash.slice(1));
  if (target && target.classList.contains("lesion")) setLesion(target, false);
  else if (lesions.length) setLesion(lesions[0], false);
  if (!active && current) { const first = viewers.find((x) => current.contains(x.card)); if (first) select(first); }
})();
