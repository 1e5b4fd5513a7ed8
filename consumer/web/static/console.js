// sshtrail web console: local times, the player, seeking from the timeline.
// Loaded from /static only (the Content-Security-Policy allows no inline script).
"use strict";

function localTimes() {
  const format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
    hour12: false, timeZoneName: "short",
  });
  for (const node of document.querySelectorAll("time[datetime]")) {
    const moment = new Date(node.getAttribute("datetime"));
    if (!Number.isNaN(moment.getTime())) {
      node.title = node.textContent;
      node.textContent = format.format(moment);
    }
  }
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  for (const node of document.querySelectorAll(".zone")) {
    node.textContent = zone || "UTC";
  }
}

function mountPlayer() {
  const element = document.getElementById("player");
  if (!element || typeof AsciinemaPlayer === "undefined") {
    return;
  }
  const start = parseFloat(element.dataset.start || "0");
  const idle = parseFloat(element.dataset.idle || "");
  const options = {
    speed: parseFloat(element.dataset.speed || "1"),
    preload: true,
    fit: "width",
    keystrokeOverlay: element.dataset.input === "yes",
  };
  if (start > 0) {
    // The frame at the asked time shows before playing; playing continues from it.
    options.startAt = start;
    options.poster = "npt:" + start.toFixed(3);
  }
  if (!Number.isNaN(idle) && idle > 0) {
    options.idleTimeLimit = idle;
  }
  let source = element.dataset.cast;
  if (element.dataset.pieces) {
    // The recording in pieces by time, each with the screen at its start: the player
    // fetches the piece it shows (at the asked time, or the first) and the next ones
    // ahead as it plays, never the whole recording. The server cuts the idle limit.
    source = { url: element.dataset.pieces, format: "segmented" };
    delete options.idleTimeLimit;
    // A still of the first screen before play, not a black box.
    const still = parseFloat(element.dataset.still || "0");
    if (!(start > 0) && still > 0) {
      options.poster = "npt:" + still.toFixed(3);
    }
  }
  if (element.dataset.live) {
    // Live: the gateway's output as it comes, applied at once (no buffering).
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    source = { driver: "websocket", url: scheme + "//" + window.location.host + element.dataset.live, bufferTime: 0 };
    delete options.startAt;
    delete options.poster;
    options.autoPlay = true;
  }
  const player = AsciinemaPlayer.create(source, element, options);
  window.sshtrailPlayer = player;
  player.addEventListener("ready", () => element.setAttribute("data-ready", "yes"));
  // The timeline's times are the session's; the player's skip the pauses the idle limit
  // cut, by the shift the server gives from each cut pause on ([session s, shift s]).
  const steps = element.dataset.pieces ? JSON.parse(element.dataset.steps || "[]") : [];
  const played = (t) => {
    let shift = 0;
    for (const [real, moved] of steps) {
      if (real > t) {
        break;
      }
      shift = moved;
    }
    return Math.max(t - shift, 0);
  };
  for (const button of document.querySelectorAll("button.seek")) {
    button.addEventListener("click", () => {
      const at = played(parseFloat(button.dataset.t || "0"));
      player.seek(at).then(() => element.scrollIntoView({ block: "nearest" }));
    });
  }
}

// A list that keeps itself current (the reviews and alerts pages): its part of the page is fetched
// again every two seconds, unless the auditor is writing in it (a reason half typed).
function refreshLists() {
  for (const element of document.querySelectorAll("[data-refresh]")) {
    const url = element.dataset.refresh;
    const busy = () => {
      const active = document.activeElement;
      if (active && element.contains(active) && active.tagName === "INPUT") {
        return true;
      }
      return Array.from(element.querySelectorAll("input.reason")).some((input) => input.value);
    };
    const again = async () => {
      if (!busy()) {
        try {
          const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
          if (response.redirected) {
            window.location.reload(); // signed out meanwhile: the page says so
            return;
          }
          const text = await response.text();
          // Typing may have begun while the list was on its way: it is not replaced then.
          if ((response.ok || response.status === 503) && !busy()) {
            element.innerHTML = text;
            element.dataset.refreshed = String(Date.now());
            localTimes();
          }
        } catch (error) {
          // offline for a moment: try again at the next tick
        }
      }
      window.setTimeout(again, 2000);
    };
    window.setTimeout(again, 2000);
  }
}

// Moderator mode on a session's page (?moderate=1): join, a heartbeat every second, and
// leave -- from "End moderation", or when the page goes away (sendBeacon, which carries
// the form's token in its body as every POST must). The answer to each says whether the
// gateway counts this auditor.
function moderate() {
  const element = document.getElementById("moderation");
  if (!element) {
    return;
  }
  const url = element.dataset.presence;
  const standing = document.getElementById("moderation-standing");
  const button = document.getElementById("end-moderation");
  const body = (state) => new URLSearchParams({ csrf: element.dataset.csrf, state: state });
  let timer = null;
  const stop = (state, text) => {
    window.clearInterval(timer);
    timer = null;
    element.dataset.state = state;
    button.disabled = true;
    standing.textContent = text;
  };
  const show = (said) => {
    const present = said.present.length + " of " + said.needed + " moderators present";
    if (said.status === "ended" || said.status === "refused" || said.status === "expired") {
      stop("over", "The session's moderation is over (" + said.status + ").");
      return;
    }
    element.dataset.state = said.counted ? "counted" : "not-counted";
    standing.textContent = said.counted
      ? "The gateway counts you as a moderator (" + present + "; session " + said.status + ")."
      : "The gateway does not count you (yet): only the moderators its rule " + said.rule +
        " names count; you may watch (" + present + "; session " + said.status + ").";
  };
  const send = async (state) => {
    try {
      const response = await fetch(url, {
        method: "POST", body: body(state), credentials: "same-origin", cache: "no-store",
      });
      if (timer === null) {
        return; // ended meanwhile: what it says of a heartbeat on its way is not news
      }
      if (response.redirected) {
        stop("stopped", "You are signed out: your moderation ended.");
        return;
      }
      if (response.headers.get("content-type") !== "application/json") {
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const said = page.getElementById("error");
        const why = said ? said.textContent : "status " + response.status;
        if (response.status !== 503) {
          stop("refused", "Not moderating: " + why);
        } else {
          standing.textContent = "Not reaching the gateways: " + why;
        }
        return;
      }
      show(await response.json());
    } catch (error) {
      standing.textContent = "The console cannot be reached: retrying every second.";
    }
  };
  // The heartbeats begin once the join is answered: one that overtook a slow join would
  // begin the moderation in the console's access log as a heartbeat, not a join.
  const start = async () => {
    timer = 0; // moderating, not beating yet
    await send("join");
    if (timer === 0) {
      timer = window.setInterval(() => send("here"), 1000);
    }
  };
  start();
  button.addEventListener("click", () => {
    stop("left", "You ended your moderation.");
    send("leave");
  });
  window.addEventListener("pagehide", () => {
    if (timer !== null) {
      window.clearInterval(timer);
      timer = null;
      navigator.sendBeacon(url, body("leave"));
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes();
  mountPlayer();
  refreshLists();
  moderate();
});
