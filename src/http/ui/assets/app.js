// Angel Memory app home: the little that needs a script. Every page works without it.
"use strict";

// Confirm before destructive forms (delete): <form data-confirm="…">.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});

// Infinite scroll: an "older" link (<a data-more data-list="ID">) fetches the next page when it comes
// into view and appends that page's items to the list #ID. The link stays a plain link for keyboards,
// readers and browsers without IntersectionObserver.
const observer =
  "IntersectionObserver" in window
    ? new IntersectionObserver(
        (entries) => {
          for (const entry of entries) {
            if (entry.isIntersecting) loadMore(entry.target);
          }
        },
        { rootMargin: "300px" }
      )
    : null;

async function loadMore(link) {
  if (link.dataset.loading) return;
  link.dataset.loading = "1";
  if (observer) observer.unobserve(link);
  const label = link.textContent;
  link.textContent = "Loading…";
  try {
    const response = await fetch(link.href, { credentials: "same-origin" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const list = document.getElementById(link.dataset.list);
    const incoming = page.getElementById(link.dataset.list);
    if (!list || !incoming) throw new Error("no list on the next page");
    for (const item of Array.from(incoming.children)) {
      list.appendChild(document.adoptNode(item));
    }
    const next = page.querySelector("a[data-more]");
    const holder = link.closest(".more") || link;
    if (next) {
      const adopted = document.adoptNode(next.closest(".more") || next);
      holder.replaceWith(adopted);
      watch(adopted.matches("a[data-more]") ? adopted : adopted.querySelector("a[data-more]"));
    } else {
      holder.remove();
    }
  } catch (error) {
    link.textContent = label + " (could not load; try again)";
    delete link.dataset.loading;
  }
}

function watch(link) {
  if (link && observer) observer.observe(link);
}

document.querySelectorAll("a[data-more]").forEach(watch);
