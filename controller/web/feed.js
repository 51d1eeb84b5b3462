// Switchyard phone: the controller's event feed (GET /v1/events?access_token=<feed token>), for the live
// transcript. The controller scopes a feed token to the calls its browser's SIP user placed, so every
// transcript turn arriving here belongs to this page. A dropped feed is reopened with capped, jittered
// backoff until the browser identity expires. show() renders the turns as transcript lines. Plain JS, no build
// step; used by phone.js.
(function () {
  "use strict";

  var FIRST_DELAY_MS = 1000;
  var MAX_DELAY_MS = 30000;

  // handlers.onTurn({turn, caller, agent, latency_ms}) for each transcript turn (worker JSON relayed by
  // FreeSWITCH: type "audio_stream_message", decoded under "message"); handlers.onState(text).
  function open(feedToken, expiresAtMs, handlers) {
    var delay = FIRST_DELAY_MS;
    var ws = null;
    var timer = null;
    var stopped = false;

    function connect() {
      var url = new URL("v1/events", window.location.href);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      url.searchParams.set("access_token", feedToken);
      ws = new WebSocket(url.toString());
      ws.onopen = function () {
        delay = FIRST_DELAY_MS;
        handlers.onState("connected");
      };
      ws.onmessage = function (ev) {
        var data;
        try { data = JSON.parse(ev.data); } catch (e) { return; }
        if (data.type === "audio_stream_message" && data.message && data.message.type === "transcript") {
          handlers.onTurn(data.message);
        }
      };
      ws.onclose = function (ev) {
        var why = "closed (" + ev.code + (ev.reason ? " " + ev.reason : "") + ")";
        if (stopped || Date.now() + delay >= expiresAtMs) {
          handlers.onState(why);
          return;
        }
        handlers.onState(why + ", reconnecting in " + Math.ceil(delay / 1000) + " s");
        timer = setTimeout(connect, delay * (0.5 + Math.random() / 2));
        delay = Math.min(delay * 2, MAX_DELAY_MS);
      };
    }

    connect();
    return {
      close: function () {
        stopped = true;
        clearTimeout(timer);
        if (ws) ws.close();
      },
    };
  }

  function addLine(list, cls, who, text) {
    if (!text) return;
    var li = document.createElement("li");
    li.className = cls;
    li.textContent = who + ": " + text;
    list.appendChild(li);
  }

  // The feed of a browser session (POST /v1/webrtc/session reply): each turn as a caller and an agent line
  // in the list ``transcript``, the feed's state in ``stateNode``. Returns the feed (close()).
  function show(session, transcript, stateNode) {
    return open(session.feed_token, Date.parse(session.expires_at), {
      onTurn: function (turn) {
        addLine(transcript, "caller", "Caller", turn.caller);
        addLine(transcript, "agent", "Agent", turn.agent);
      },
      onState: function (text) { stateNode.textContent = "event feed: " + text; },
    });
  }

  window.SwitchyardFeed = { open: open, show: show, addLine: addLine };
})();
