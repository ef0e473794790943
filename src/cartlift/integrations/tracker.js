/* cartlift storefront tracker: no dependencies, no build step.
 * <script src="https://CARTLIFT/v1/tracker.js" data-key="TRACK_KEY" [data-require-consent]></script>
 * cartlift.viewProduct({product_id, price}); cartlift.addToCart({product_id, quantity, price});
 * cartlift.removeFromCart(...); cartlift.checkout({order_id}); cartlift.purchase({order_id, items});
 * cartlift.identify(customerId, {email}); cartlift.consent(true|false); cartlift.onRestore(fn).
 */
(function (w, d) {
  "use strict";
  if (w.cartlift && w.cartlift.version) return;
  var P = "cartlift_", SESSION_MS = 18e5, YEAR = 31536e3, MAX_QUEUE = 5000, BEACON_MAX = 50, MAX_BATCH = 500;
  var cfg = { endpoint: "", key: "", batchSize: 20, flushMs: 1000, requireConsent: false, onRestore: null };
  var queue = [], mem = {}, timer = null, saving = null, sending = false, backoff = 0, consent = null, user = null;
  var restored = null, restoreFns = [];

  function now() { return Date.now(); }
  function uid() {
    if (w.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = new Uint8Array(16); crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
  }
  function mayStore() { return !cfg.requireConsent || consent === true; }
  function mayTrack() { return cfg.key && consent !== false && mayStore(); }
  function get(k) {
    if (mayStore()) { try { var v = localStorage.getItem(P + k); if (v !== null) return v; } catch (e) {} }
    return k in mem ? mem[k] : null;
  }
  function set(k, v) {
    mem[k] = v;
    if (mayStore()) { try { localStorage.setItem(P + k, v); } catch (e) {} }
  }
  function cookie(name, value) {
    if (value === undefined) {
      var m = d.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
      return m ? decodeURIComponent(m[1]) : null;
    }
    if (mayStore()) d.cookie = name + "=" + encodeURIComponent(value) + "; path=/; max-age=" + YEAR + "; SameSite=Lax";
  }
  // the anonymous id lives in a first-party cookie, with localStorage as its copy
  function anonymousId() {
    var id = cookie(P + "aid") || get("aid");
    if (!id) id = "a_" + uid();
    cookie(P + "aid", id); set("aid", id);
    return id;
  }
  // a session ends after 30 minutes without an event
  function sessionId() {
    var s = get("sid"), last = +get("last") || 0;
    if (!s || now() - last > SESSION_MS) s = "s_" + uid();
    set("sid", s); set("last", String(now()));
    return s;
  }
  function save() { clearTimeout(saving); saving = null; if (mayStore()) set("queue", JSON.stringify(queue)); }
  // the queue is written to localStorage at most every 100 ms, not once per event
  function saveSoon() { if (!saving) saving = setTimeout(save, 100); }
  function push(item) {
    if (consent === false) return;
    item.id = item.id || uid();
    item.ts = new Date().toISOString();
    item.anonymous_id = anonymousId();
    if (user) item.user_id = user;
    if (item.kind === "event") item.session_id = sessionId();
    queue.push(item);
    if (queue.length > MAX_QUEUE) queue.splice(0, queue.length - MAX_QUEUE);
    saveSoon(); schedule();
  }
  function schedule() {
    if (!mayTrack() || !queue.length) return;
    if (queue.length >= cfg.batchSize && !sending) flush();
    else if (!timer) timer = setTimeout(flush, backoff || cfg.flushMs);
  }
  function url(path) { return cfg.endpoint + path + "?key=" + encodeURIComponent(cfg.key); }
  function body(items) { return JSON.stringify({ sent_at: new Date().toISOString(), batch: items }); }
  function drop(items) {
    var sent = {};
    items.forEach(function (i) { sent[i.id] = 1; });
    queue = queue.filter(function (i) { return !sent[i.id]; });
  }
  // a batch leaves as text/plain, so the browser needs no CORS preflight; a failed or refused
  // batch stays queued with the same ids and is retried with a growing delay. One batch is in
  // flight at a time: a backlog leaves in larger batches (each commit costs the service about
  // the same), and only a small body may outlive the page (keepalive allows 64 kB)
  function flush() {
    clearTimeout(timer); timer = null;
    if (!mayTrack() || sending || !queue.length) return;
    var items = queue.slice(0, Math.max(cfg.batchSize, MAX_BATCH)), text = body(items);
    sending = true;
    fetch(url("/v1/track"), { method: "POST", body: text, headers: { "Content-Type": "text/plain" },
      keepalive: text.length < 6e4, credentials: "omit", mode: "cors" })
      .then(function (r) {
        if (r.status === 429 || r.status === 408 || r.status >= 500) throw new Error("retry " + r.status);
        if (!r.ok) console.warn("cartlift: the service refused a batch (" + r.status + ")");
        drop(items); backoff = 0;
      })
      .catch(function () { backoff = Math.min(backoff ? backoff * 2 : 1000, 60000); })
      .then(function () { sending = false; save(); schedule(); });
  }
  // when the page is hidden, what is queued leaves by sendBeacon; it stays queued, so a beacon
  // that never arrives is sent again (same ids: stored once) from the next page
  function beacon() {
    if (!mayTrack() || !queue.length || !navigator.sendBeacon) return;
    for (var i = 0; i < queue.length; i += BEACON_MAX) {
      navigator.sendBeacon(url("/v1/track"), new Blob([body(queue.slice(i, i + BEACON_MAX))], { type: "text/plain" }));
    }
    save();
  }
  function event(type, data) {
    data = data || {};
    var item = { kind: "event", type: type };
    ["product_id", "quantity", "price", "order_id"].forEach(function (k) { if (data[k] != null) item[k] = data[k]; });
    if (data.items) item.items = data.items.map(function (l) {
      return { product_id: l.product_id, quantity: l.quantity == null ? 1 : l.quantity, price: l.price };
    });
    push(item);
  }
  function restore() {
    var m = /[?&]cl_restore=([^&#]+)/.exec(w.location.search);
    if (!m || !cfg.key) return;
    fetch(url("/v1/track/restore") + "&token=" + m[1], { credentials: "omit", mode: "cors" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (cart) {
        if (!cart) return;
        restored = cart;
        restoreFns.forEach(function (f) { f(cart); });
        try { w.dispatchEvent(new CustomEvent("cartlift:restore", { detail: cart })); } catch (e) {}
      })
      .catch(function () {});
  }

  var api = {
    version: "1",
    init: function (options) {
      for (var k in options) if (options[k] !== undefined) cfg[k] = options[k];
      cfg.endpoint = String(cfg.endpoint).replace(/\/$/, "");
      if (cfg.requireConsent) { var c = get("consent"); consent = c === null ? null : c === "1"; }
      user = get("uid");
      try { queue = JSON.parse(get("queue") || "[]"); } catch (e) { queue = []; }
      if (cfg.onRestore) restoreFns.push(cfg.onRestore);
      restore(); schedule();
      return api;
    },
    page: function (data) { if (data && data.product_id) event("view", data); else if (mayTrack()) sessionId(); },
    viewProduct: function (data) { event("view", data); },
    addToCart: function (data) { event("cart_add", data); },
    removeFromCart: function (data) { event("cart_remove", data); },
    checkout: function (data) { event("checkout", data); },
    purchase: function (data) { event("purchase", data); },
    identify: function (customerId, traits) {
      user = String(customerId); set("uid", user);
      push({ kind: "identify", user_id: user, email: traits && traits.email });
    },
    consent: function (given) {
      consent = !!given;
      if (consent) { set("consent", "1"); for (var k in mem) set(k, mem[k]); save(); schedule(); }
      else {
        queue = []; mem = {}; user = null;
        try { for (var i = localStorage.length - 1; i >= 0; i--) { var n = localStorage.key(i); if (n.indexOf(P) === 0) localStorage.removeItem(n); } } catch (e) {}
        d.cookie = P + "aid=; path=/; max-age=0";
      }
    },
    onRestore: function (f) { restoreFns.push(f); if (restored) f(restored); },
    flush: flush,
    ids: function () { return { anonymous_id: mayStore() ? anonymousId() : null, session_id: get("sid"), user_id: user }; },
    pending: function () { return queue.length; }
  };
  w.cartlift = api;
  d.addEventListener("visibilitychange", function () { if (d.visibilityState === "hidden") beacon(); });
  w.addEventListener("pagehide", beacon);

  var s = d.currentScript;
  if (s && s.getAttribute("data-key")) {
    api.init({
      key: s.getAttribute("data-key"),
      endpoint: s.getAttribute("data-endpoint") || s.src.replace(/\/v1\/tracker\.js.*$/, ""),
      requireConsent: s.hasAttribute("data-require-consent")
    });
  }
})(window, document);
