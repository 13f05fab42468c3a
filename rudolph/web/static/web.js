// rudolph web: the page works without this; it only loads "more" in place and puts the
// cursor on a query's syntax error.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("q");
  const column = box && Number(box.dataset.column);
  if (column) {
    box.focus();
    box.setSelectionRange(column - 1, column);
  }
  document.addEventListener("click", async (event) => {
    const more = event.target.closest("a#more");
    if (!more) return;
    event.preventDefault();
    more.textContent = "loading…";
    try {
      const response = await fetch(more.href, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`${response.status}`);
      const next = new DOMParser().parseFromString(await response.text(), "text/html");
      const grid = document.getElementById("grid");
      next.querySelectorAll("#grid > .thumb").forEach((thumb) => grid.appendChild(thumb));
      const nextMore = next.getElementById("more");
      if (nextMore) more.replaceWith(nextMore); else more.parentElement.remove();
    } catch (error) {
      more.textContent = `more (failed: ${error.message}; click to retry)`;
    }
  });
});
