// The search box of each interactive volcano (report_figures.volcano_figure): ring and label the
// gene whose symbol (or ID) is typed; the figure's last trace holds the ringed point.
"use strict";

function findGene(plot, query) {
  const wanted = query.trim().toUpperCase();
  for (const trace of plot.data.slice(0, -1)) {
    const i = trace.text.findIndex(function (label) { return label.toUpperCase() === wanted; });
    if (i >= 0) return {x: trace.x[i], y: trace.y[i], label: trace.text[i], call: trace.meta};
  }
  return null;
}

function searchVolcano(input) {
  const plot = document.getElementById(input.dataset.plot);
  const status = document.getElementById(input.dataset.plot + "-found");
  const query = input.value.trim();
  const hit = query === "" ? null : findGene(plot, query);
  Plotly.restyle(plot, {x: [hit ? [hit.x] : []], y: [hit ? [hit.y] : []], text: [hit ? [hit.label] : []]},
                 [plot.data.length - 1]);
  status.textContent = query === "" ? "" :
    hit ? hit.label + ": " + hit.call : query + ": not among the tested genes";
}

document.querySelectorAll("input.volcano-search").forEach(function (input) {
  input.addEventListener("input", function () { searchVolcano(input); });
});
