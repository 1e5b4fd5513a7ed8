// sshtrail web console: the Active sessions page, kept current from /active.json.
// Rows are updated in place, keyed by session id, so a reason half typed in a row's
// Terminate form is kept; a session that ended leaves the list. Text from sessions is
// set as text (textContent), never as HTML.
"use strict";

(function () {
  const table = document.getElementById("active");
  if (!table) {
    return;
  }
  const body = table.tBodies[0];
  const none = document.getElementById("active-none");
  const count = document.getElementById("active-count");
  const problem = document.getElementById("active-problem");
  const more = document.getElementById("active-more");
  const format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
    hour12: false, timeZoneName: "short",
  });

  const cell = (row, name) => row.querySelector("td." + name);
  const duration = (seconds) => {
    if (seconds === null) {
      return "-";
    }
    const whole = Math.floor(seconds);
    const h = Math.floor(whole / 3600);
    const m = String(Math.floor((whole % 3600) / 60)).padStart(2, "0");
    const s = String(whole % 60).padStart(2, "0");
    return h + ":" + m + ":" + s;
  };
  const size = (bytes) => {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return (unit === 0 ? String(value) : value.toFixed(1)) + " " + units[unit];
  };

  const made = (session) => {
    const row = document.createElement("tr");
    row.className = "active-session";
    row.dataset.session = session.id;
    for (const name of ["id", "operator", "target", "kind", "started", "duration", "bytes", "flags", "actions"]) {
      const td = document.createElement("td");
      td.className = name;
      row.appendChild(td);
    }
    const code = document.createElement("code");
    code.textContent = session.short;
    cell(row, "id").appendChild(code);
    cell(row, "operator").textContent = session.operator;
    cell(row, "target").textContent = session.target;
    cell(row, "kind").textContent = session.kind;
    const started = cell(row, "started");
    if (session.started_at) {
      const time = document.createElement("time");
      time.setAttribute("datetime", session.started_at);
      time.title = session.started_at;
      time.textContent = format.format(new Date(session.started_at));
      started.appendChild(time);
    } else {
      started.textContent = "-";
    }
    const actions = cell(row, "actions");
    const watch = document.createElement("a");
    watch.className = "watch";
    watch.href = session.watch;
    watch.textContent = "Watch";
    actions.appendChild(watch);
    if (session.terminate) {
      const form = document.createElement("form");
      form.method = "post";
      form.action = session.terminate;
      form.className = "answer terminate-row";
      const csrf = document.createElement("input");
      csrf.type = "hidden";
      csrf.name = "csrf";
      csrf.value = table.dataset.csrf;
      const reason = document.createElement("input");
      reason.name = "reason";
      reason.className = "reason";
      reason.required = true;
      reason.maxLength = 500;
      reason.placeholder = "reason (shown to the operator, recorded)";
      const button = document.createElement("button");
      button.type = "submit";
      button.className = "deny terminate";
      button.textContent = "Terminate";
      form.append(csrf, reason, button);
      actions.appendChild(form);
    }
    return row;
  };

  const show = (said) => {
    const seen = new Set();
    said.sessions.forEach((session, index) => {
      seen.add(session.id);
      let row = body.querySelector('tr.active-session[data-session="' + session.id + '"]');
      if (!row) {
        row = made(session);
      }
      cell(row, "duration").textContent = duration(session.duration_s);
      cell(row, "bytes").textContent = size(session.bytes_in) + " / " + size(session.bytes_out);
      cell(row, "flags").textContent = session.flags.length ? session.flags.join(", ") : "-";
      const rows = body.querySelectorAll("tr.active-session");
      if (rows[index] !== row) {
        body.insertBefore(row, rows[index] || none);
      }
    });
    for (const row of body.querySelectorAll("tr.active-session")) {
      if (!seen.has(row.dataset.session)) {
        row.remove();
      }
    }
    none.hidden = said.sessions.length > 0;
    none.firstElementChild.textContent = "No session you may see is open now.";
    count.textContent = String(said.sessions.length) + (said.more ? "+" : "");
    more.hidden = !said.more;
    table.dataset.refreshed = String(Date.now());
  };

  const again = async () => {
    try {
      const response = await fetch(table.dataset.source, { credentials: "same-origin", cache: "no-store" });
      if (response.redirected) {
        window.location.reload(); // signed out meanwhile: the page says so
        return;
      }
      if (response.headers.get("content-type") === "application/json") {
        show(await response.json());
        problem.hidden = true;
      } else {
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const said = page.getElementById("error");
        problem.textContent = "The list could not be read: " + (said ? said.textContent : "status " + response.status);
        problem.hidden = false;
      }
    } catch (error) {
      problem.textContent = "The console cannot be reached: trying again every two seconds.";
      problem.hidden = false;
    }
    window.setTimeout(again, 2000);
  };
  again();
})();
