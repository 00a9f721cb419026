/* The dashboard's bit of JavaScript: charts drawn from their data tables, and the upload's
   progress bars. Pages work without it; it only draws and speeds things up. */
(function () {
  "use strict";

  // Amounts as rupees with Indian digit grouping (1,23,45,678.90), as the tables show them.
  var RUPEES = new Intl.NumberFormat("en-IN", { style: "currency", currency: "INR" });
  var COUNT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

  function cssColour(name, fallback) {
    var value = window.getComputedStyle(document.documentElement).getPropertyValue(name);
    return (value && value.trim()) || fallback;
  }

  function axisTitle(text, colour) {
    return { display: Boolean(text), text: text || "", color: colour, font: { weight: "600" } };
  }

  // A figure's rows may carry data-href: choosing a bar opens it (the histogram's band, a
  // month's report), as the row's link in the table does.
  function drawChart(figure) {
    if (figure.classList.contains("chart--drawn") || typeof window.Chart === "undefined") return;
    var canvas = figure.querySelector("canvas");
    var rows = figure.querySelectorAll(".chart__data tbody tr");
    var labels = [], values = [], links = [];
    rows.forEach(function (row) {
      var cell = row.querySelector("[data-value]");
      labels.push(row.querySelector("th").textContent.trim());
      values.push(cell ? Number(cell.getAttribute("data-value")) : 0);
      links.push(row.getAttribute("data-href"));
    });
    var horizontal = figure.hasAttribute("data-horizontal");
    var format = figure.getAttribute("data-value-format") === "count" ? COUNT : RUPEES;
    var ink = cssColour("--muted", "#4a5361"), grid = cssColour("--line", "#d4d9e0");
    var valueAxis = { beginAtZero: true, ticks: { color: ink, callback: function (value) { return format.format(value); } }, grid: { color: grid } };
    var labelAxis = { ticks: { color: ink, autoSkip: true, maxRotation: 0 }, grid: { color: grid } };
    var x = horizontal ? valueAxis : labelAxis, y = horizontal ? labelAxis : valueAxis;
    x = Object.assign({}, x, { title: axisTitle(figure.getAttribute("data-x-title"), ink) });
    y = Object.assign({}, y, { title: axisTitle(figure.getAttribute("data-y-title"), ink) });
    var clickable = links.some(Boolean);
    figure._chart = new window.Chart(canvas, {
      type: "bar",
      data: { labels: labels, datasets: [{ label: figure.getAttribute("data-series") || "", data: values, backgroundColor: cssColour("--brand", "#1f4e9c") }] },
      options: {
        indexAxis: horizontal ? "y" : "x",
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: function (item) { return format.format(item.raw); } } }
        },
        scales: { x: x, y: y },
        onHover: clickable ? function (event, elements) {
          event.native.target.style.cursor = elements.length && links[elements[0].index] ? "pointer" : "default";
        } : undefined,
        onClick: clickable ? function (event, elements) {
          var href = elements.length && links[elements[0].index];
          if (href) window.location.assign(href);
        } : undefined
      }
    });
    figure.classList.add("chart--drawn");
  }

  function drawCharts(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("figure.chart[data-chart]").forEach(drawChart);
    if (root.matches && root.matches("figure.chart[data-chart]")) drawChart(root);
  }

  function setUploadProgress(fraction, text, state) {
    var bar = document.getElementById("upload-progress");
    var label = document.getElementById("upload-progress-text");
    if (!bar) return;
    bar.value = Math.round(fraction * 100);
    bar.textContent = bar.value + "%";
    if (state) bar.setAttribute("data-state", state);
    label.textContent = text || bar.value + "%";
  }

  function bindDropZone(form) {
    var zone = form.querySelector("[data-drop-zone]");
    var input = form.querySelector("input[type=file]");
    if (!zone || !input) return;
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("drop-zone--over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("drop-zone--over"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) input.files = event.dataTransfer.files;
    });
  }

  // The messages of a failed upload, once a later one has gone through.
  function clearUploadErrors(form) {
    form.querySelectorAll(".errorlist, .form-errors").forEach(function (message) { message.remove(); });
    form.querySelectorAll("[aria-invalid]").forEach(function (field) {
      field.removeAttribute("aria-invalid");
      var described = (field.getAttribute("aria-describedby") || "").split(" ").filter(function (id) {
        return id && !/_error$/.test(id);
      });
      if (described.length) field.setAttribute("aria-describedby", described.join(" "));
      else field.removeAttribute("aria-describedby");
    });
  }

  function bindUploadForm(form) {
    if (form.dataset.bound) return;
    form.dataset.bound = "1";
    bindDropZone(form);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var panel = document.getElementById("upload-progress-panel");
      var slot = document.getElementById("import-status-slot");
      panel.hidden = false;
      slot.innerHTML = "";
      setUploadProgress(0, "0%", "uploading");
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      var request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.setRequestHeader("HX-Request", "true");
      request.upload.addEventListener("progress", function (progress) {
        if (progress.lengthComputable) setUploadProgress(progress.loaded / progress.total, null, "uploading");
      });
      request.addEventListener("load", function () {
        button.disabled = false;
        if (request.status === 201) {
          setUploadProgress(1, "Uploaded", "done");
          slot.innerHTML = request.responseText;
          window.htmx.process(slot);
          form.reset();
          clearUploadErrors(form);
        } else {
          // The form again, with the reason beside the field.
          setUploadProgress(0, "Not uploaded", "failed");
          form.outerHTML = request.responseText;
          var again = document.getElementById("upload-form");
          if (again) { bindUploadForm(again); var invalid = again.querySelector("[aria-invalid=true]"); if (invalid) invalid.focus(); }
        }
      });
      request.addEventListener("error", function () {
        button.disabled = false;
        setUploadProgress(0, "Upload failed: the server could not be reached.", "failed");
      });
      request.send(new FormData(form));
    });
  }

  // After a report is replaced by htmx (a submit, "Next"), keyboard and screen-reader users
  // would be left on <body>: move focus to what changed — the first field refused, else the
  // results' heading.
  var REPORTS = ["range-report", "top-customers-report"];
  function focusReport(report) {
    var target = report.querySelector('[aria-invalid="true"]') || report.querySelector(".results h2");
    if (!target) return;
    if (target.tagName === "H2") target.setAttribute("tabindex", "-1");
    target.focus();
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    var id = event.detail && event.detail.target && event.detail.target.id;
    if (REPORTS.indexOf(id) === -1) return;
    var report = document.getElementById(id);
    if (report) focusReport(report);
  });

  // Choosing a period (range report), a state or an order (top customers) runs the report at
  // once: the form names those fields in data-run-on-change. The listener sits on the document,
  // not on the form htmx swaps in (bound only once the swap settles), so a choice made in
  // between still runs the report: through htmx if it listens by then, as a plain GET if not.
  document.addEventListener("change", function (event) {
    var field = event.target;
    var form = field && field.form;
    if (!form || !form.hasAttribute("data-run-on-change")) return;
    if (form.getAttribute("data-run-on-change").split(" ").indexOf(field.name) === -1) return;
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
  });

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts(document);
    var form = document.getElementById("upload-form");
    if (form && window.XMLHttpRequest && window.FormData) bindUploadForm(form);
    if (window.htmx) window.htmx.onLoad(function (element) { drawCharts(element); });
  });
})();
