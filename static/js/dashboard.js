/* The dashboard's bit of JavaScript: charts drawn from their data tables, and the upload's
   progress bars. Pages work without it; it only draws and speeds things up. */
(function () {
  "use strict";

  var BAR = "#1f4e9c";

  function drawChart(figure) {
    if (figure.classList.contains("chart--drawn") || typeof window.Chart === "undefined") return;
    var canvas = figure.querySelector("canvas");
    var rows = figure.querySelectorAll(".chart__data tbody tr");
    var labels = [], values = [];
    rows.forEach(function (row) {
      var cell = row.querySelector("[data-value]");
      labels.push(row.querySelector("th").textContent.trim());
      values.push(cell ? Number(cell.getAttribute("data-value")) : 0);
    });
    var horizontal = figure.hasAttribute("data-horizontal");
    figure._chart = new window.Chart(canvas, {
      type: "bar",
      data: { labels: labels, datasets: [{ label: figure.getAttribute("data-series") || "", data: values, backgroundColor: BAR }] },
      options: {
        indexAxis: horizontal ? "y" : "x",
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { display: false } },
        scales: { x: { ticks: { autoSkip: true, maxRotation: 0 } }, y: { beginAtZero: !horizontal } }
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

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts(document);
    var form = document.getElementById("upload-form");
    if (form && window.XMLHttpRequest && window.FormData) bindUploadForm(form);
    if (window.htmx) window.htmx.onLoad(function (element) { drawCharts(element); });
  });
})();
