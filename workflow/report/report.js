// Sortable and searchable tables and a figure lightbox, with no library: the report must work offline.
"use strict";

// A cell's value for sorting: numbers (including 1.2e-05, and a bound such as "< 1e-300" at its
// value) numerically, NA always last.
function sortKey(text) {
  if (text === "NA" || text === "") return null;
  const number = Number(text.replace(/^< /, ""));
  return Number.isNaN(number) ? text.toLowerCase() : number;
}

function compareKeys(a, b) {
  if (a === null) return b === null ? 0 : 1;
  if (b === null) return -1;
  if (typeof a === typeof b) return a < b ? -1 : a > b ? 1 : 0;
  return typeof a === "number" ? -1 : 1;
}

function sortTable(table, column, descending) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort(function (r1, r2) {
    const a = sortKey(r1.cells[column].textContent);
    const b = sortKey(r2.cells[column].textContent);
    // NA stays last in both directions
    return descending && a !== null && b !== null ? -compareKeys(a, b) : compareKeys(a, b);
  });
  rows.forEach(function (row) { body.appendChild(row); });
}

function makeSortable(table) {
  const headers = table.tHead.rows[0].cells;
  Array.from(headers).forEach(function (header, column) {
    header.addEventListener("click", function () {
      const descending = header.getAttribute("aria-sort") === "ascending";
      Array.from(headers).forEach(function (h) { h.removeAttribute("aria-sort"); });
      header.setAttribute("aria-sort", descending ? "descending" : "ascending");
      sortTable(table, column, descending);
    });
  });
}

function makeSearchable(input) {
  const table = document.getElementById(input.dataset.table);
  input.addEventListener("input", function () {
    const query = input.value.trim().toLowerCase();
    Array.from(table.tBodies[0].rows).forEach(function (row) {
      row.hidden = query !== "" && !row.textContent.toLowerCase().includes(query);
    });
  });
}

// Lightbox: a click on a figure shows it as large as the window; a click or Escape closes it.
function makeLightbox() {
  const box = document.createElement("div");
  box.id = "lightbox";
  box.hidden = true;
  const image = document.createElement("img");
  const caption = document.createElement("p");
  box.append(image, caption);
  document.body.appendChild(box);
  function close() { box.hidden = true; image.removeAttribute("src"); }
  box.addEventListener("click", close);
  document.addEventListener("keydown", function (event) { if (event.key === "Escape") close(); });
  document.querySelectorAll("figure.fig img").forEach(function (figureImage) {
    figureImage.addEventListener("click", function () {
      image.src = figureImage.src;
      image.alt = figureImage.alt;
      caption.textContent = figureImage.alt;
      box.hidden = false;
    });
  });
}

document.querySelectorAll("table.sortable").forEach(makeSortable);
document.querySelectorAll("input.table-filter").forEach(makeSearchable);
makeLightbox();
