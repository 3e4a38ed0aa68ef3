/* dinoclust page language. Loaded before Plotly, so the text the template wrote is in the reader's
   language (the address's #…&lang=, then their last choice, then the build's) before the large
   script loads: no flash of the other language, and the text is right even if Plotly fails.
   app.js uses window.dinoclustI18n for everything it writes later. */
(function () {
  "use strict";

  var KEY = "dinoclust.lang";
  var ui = JSON.parse(document.getElementById("dinoclust-ui").textContent);

  function wanted() {
    var match = /(?:^#|&)lang=([a-z]+)/.exec(window.location.hash);
    var stored = null;
    try { stored = window.localStorage.getItem(KEY); } catch (e) { stored = null; }
    var lang = match ? match[1] : stored;
    return ui.langs.indexOf(lang) >= 0 ? lang : ui.lang;
  }

  // Words that fit where the page is read: "tap" on a touch screen (no hover), and no address to
  // share inside a frame (a notebook). A key with a variant (key_touch, key_frame) uses it there.
  function framed() {
    try { return window.self !== window.top || window.location.protocol === "about:"; }
    catch (e) { return true; }
  }
  var touch = Boolean(window.matchMedia && window.matchMedia("(hover: none)").matches);
  var variants = (touch ? ["_touch"] : []).concat(framed() ? ["_frame"] : []);

  var i18n = { ui: ui, lang: wanted(), touch: touch, variants: variants };

  // A UI string in the current language, {placeholders} filled (render.translate does the same;
  // an argument named x_key names a UI string that fills {x}).
  i18n.t = function (key, args) {
    var strings = ui.strings[i18n.lang];
    var text = strings[key];
    variants.forEach(function (suffix) { if (strings[key + suffix]) { text = strings[key + suffix]; } });
    Object.keys(args || {}).forEach(function (name) {
      var value = String(args[name]);
      if (/_key$/.test(name)) { value = strings[value]; name = name.slice(0, -4); }
      text = text.split("{" + name + "}").join(value);
    });
    return text;
  };

  // A known label as the reader sees it: the label of images directly in a single input's root
  // (labels.TOP_LEVEL, the English UI string) is data in the CSVs, words in the page.
  i18n.label = function (name) {
    return name === ui.strings.en.label_top_level ? i18n.t("label_top_level") : name;
  };

  // Text written by the template carries its key (and arguments): re-translate it in place.
  i18n.apply = function () {
    document.documentElement.lang = i18n.lang;
    document.querySelectorAll("[data-i18n]").forEach(function (node) {
      var args = node.getAttribute("data-i18n-args");
      node.textContent = i18n.t(node.getAttribute("data-i18n"), args ? JSON.parse(args) : null);
    });
    document.querySelectorAll("[data-i18n-aria]").forEach(function (node) {
      node.setAttribute("aria-label", i18n.t(node.getAttribute("data-i18n-aria")));
    });
    document.querySelectorAll("[data-i18n-placeholder]").forEach(function (node) {
      node.setAttribute("placeholder", i18n.t(node.getAttribute("data-i18n-placeholder")));
    });
    document.querySelectorAll(".lang-switch button").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.getAttribute("data-lang") === i18n.lang));
    });
  };

  // The reader's choice: kept for their next visit (where the browser allows it).
  i18n.set = function (lang) {
    if (ui.langs.indexOf(lang) < 0) { return false; }
    i18n.lang = lang;
    try { window.localStorage.setItem(KEY, lang); } catch (e) { /* private mode: not kept */ }
    i18n.apply();
    return true;
  };

  if (i18n.lang !== ui.lang || variants.length) { i18n.apply(); }
  window.dinoclustI18n = i18n;
})();
