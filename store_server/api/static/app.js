// Walkout shopper app: entry-code countdown, and live updates pushed by the store (Server-Sent
// Events) that refresh the page content in place. No polling.
(function () {
  "use strict";

  function countdown() {
    const card = document.getElementById("entry-code");
    if (!card) return;
    const expires = parseFloat(card.dataset.expires) * 1000;
    const label = card.querySelector("[data-countdown]");
    const renew = card.querySelector(".renew");
    function tick() {
      const left = Math.max(0, Math.round((expires - Date.now()) / 1000));
      label.textContent = left > 0 ? left + " s" : "expired";
      if (left <= 0) {
        card.classList.add("expired");
        renew.hidden = false;
        return;
      }
      setTimeout(tick, 1000);
    }
    tick();
  }

  function follow() {
    // A top-up continues on the card provider's page (a link, so CSP form-action stays 'self').
    const link = document.querySelector("a[data-follow]");
    if (link) location.assign(link.href);
  }

  async function refreshMain() {
    // Re-render the same page on the server and swap the content: what is shown is what is stored.
    const response = await fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (!response.ok) return;
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = doc.getElementById("main");
    const main = document.getElementById("main");
    if (!fresh || !main || document.querySelector("details[open], input:focus")) return;
    main.innerHTML = fresh.innerHTML;
    countdown();
  }

  function live() {
    const url = document.body.dataset.live;
    if (!url || !window.EventSource) return;
    const source = new EventSource(url);
    let pending = null;
    const later = () => {
      clearTimeout(pending);
      pending = setTimeout(refreshMain, 150); // one refresh for a burst of events
    };
    ["session", "receipt", "review"].forEach((type) => source.addEventListener(type, (event) => {
      if (type === "session" && document.getElementById("entry-code")) {
        const data = JSON.parse(event.data);
        if (data.session && data.session.state === "open") location.href = "/app";
        return;
      }
      later();
    }));
  }

  follow();
  countdown();
  live();
})();
