// rudolph web: the pages work without this; it loads "more" in place, puts the cursor on a
// query's syntax error, places the face captions of an image and renames persons. Text from
// the server goes in as textContent, never as markup.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("q");
  const column = box && Number(box.dataset.column);
  if (column) {
    box.focus();
    box.setSelectionRange(column - 1, column);
  }
  // Positions as CSSOM properties: the Content-Security-Policy refuses inline style attributes.
  document.querySelectorAll("a.face-tag").forEach((tag) => {
    // Under the box, from its left edge; from its right edge in the picture's right half, so
    // a long name stays over the picture.
    const right = Number(tag.dataset.right);
    if (right < Number(tag.dataset.x)) tag.style.right = `${right * 100}%`;
    else tag.style.left = `${Number(tag.dataset.x) * 100}%`;
    tag.style.top = `${Number(tag.dataset.y) * 100}%`;
    tag.hidden = false;
  });
  document.querySelectorAll("form.rename").forEach((form) => { form.hidden = false; });
  document.addEventListener("submit", async (event) => {
    const form = event.target.closest("form.rename");
    if (!form) return;
    event.preventDefault();
    const card = form.closest(".person");
    const input = form.elements.namedItem("name");
    const status = form.querySelector(".rename-status");
    status.textContent = "saving…";
    try {
      const response = await fetch(`/api/people/${encodeURIComponent(card.dataset.personId)}`, {
        method: "PUT",
        credentials: "same-origin",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: input.value }),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
      const name = card.querySelector(".name");
      name.textContent = body.name ?? "unnamed";
      name.classList.toggle("unnamed", body.name === null);
      input.value = body.name ?? "";
      status.textContent = "saved";
    } catch (error) {
      status.textContent = `not saved: ${error.message}`;
    }
  });
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
