// Switchyard browser phone: POST /v1/webrtc/session (api.js), then Janus (janus.js) + its SIP plugin, plus
// the controller's event feed for the live transcript (feed.js). Plain JS, no build step, no external URLs.
//
// Janus SIP plugin requests/events used here (Janus 1.1.2, plugins/janus_sip.c and its API doc):
//   register {username: SIP URI, authuser, secret, proxy, outbound_proxy, display_name} -> registering |
//     registered | registration_failed {code, reason}
//   call {uri} + JSEP offer -> calling, ringing/proceeding, progress (+JSEP), accepted (+JSEP),
//     hangup {code, reason}
//   incomingcall {username, displayname} + JSEP offer -> accept + JSEP answer -> accepted; or decline;
//     missed_call {caller} (the plugin answered 486 itself: this handle was in a call); hangup
// DTMF goes as RFC 2833 telephone-events in the audio (janus.js handle.dtmf -> RTCDTMFSender): the SIP
// plugin relays the browser's RTP to FreeSWITCH, whose sofia profiles take RFC 2833 by default
// (dtmf-type rfc2833). Without a DTMF sender it falls back to SIP INFO (plugin request dtmf_info,
// application/dtmf-relay), which FreeSWITCH's sofia also turns into DTMF.
(function () {
  "use strict";

  var TOKEN_KEY = "switchyard.token";
  var KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];

  var el = {};
  var session = null; // POST /v1/webrtc/session reply
  var janus = null;
  var sip = null; // janus.plugin.sip handle
  var localStream = null;
  var feed = null;
  var inCall = false;
  var offer = null; // the JSEP offer of a call ringing here, until answered or declined

  function $(id) { return document.getElementById(id); }

  function showError(text) {
    el.error.textContent = text;
    el.error.hidden = false;
  }

  function clearError() {
    el.error.textContent = "";
    el.error.hidden = true;
  }

  function setState(node, state, text) {
    node.dataset.state = state;
    node.textContent = text;
  }

  function onLogin(ev) {
    ev.preventDefault();
    clearError();
    var token = el.token.value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    el.connect.disabled = true;
    window.SwitchyardApi.createSession(token, el.displayName.value.trim())
      .then(function (data) {
        session = data;
        el.login.hidden = true;
        el.phone.hidden = false;
        el.identity.textContent = data.sip.identity;
        renderExtensions(data.extensions || []);
        if (feed) feed.close();
        feed = window.SwitchyardFeed.show(data, el.transcript, el.feedState);
        startJanus();
      })
      .catch(function (e) {
        if (String(e.message).indexOf("(401") >= 0) sessionStorage.removeItem(TOKEN_KEY);
        showError(e.message || String(e));
        el.connect.disabled = false;
      });
  }

  // ---- Janus ------------------------------------------------------------------------------------

  function startJanus() {
    Janus.init({
      debug: false,
      callback: function () {
        janus = new Janus({
          server: session.janus_url,
          token: session.janus_token,
          iceServers: [], // no STUN/TURN: nothing is contacted but Janus
          success: attachSip,
          error: function (e) {
            showError("Janus (" + session.janus_url + "): " + e);
            setState(el.regState, "failed", "Janus unreachable");
          },
          destroyed: function () {
            setState(el.regState, "idle", "disconnected from Janus");
          },
        });
      },
    });
  }

  function attachSip() {
    janus.attach({
      plugin: "janus.plugin.sip",
      opaqueId: "switchyard-phone-" + Janus.randomString(8),
      success: function (handle) {
        sip = handle;
        register();
      },
      error: function (e) { showError("Could not attach the Janus SIP plugin: " + e); },
      iceState: onIceState,
      webrtcState: function (up, reason) {
        if (!up && inCall) showError("WebRTC media to Janus went down" + (reason ? " (" + reason + ")" : "") + ".");
      },
      onmessage: onSipMessage,
      onremotetrack: function (track, mid, on) {
        if (track.kind !== "audio") return;
        el.remoteAudio.srcObject = on ? new MediaStream([track]) : null;
      },
      oncleanup: function () { el.remoteAudio.srcObject = null; },
    });
  }

  // Janus's own refusals (an expired or revoked token, a destroyed session) reach send()'s error callback,
  // never onmessage: show them, and end what the request would have started.
  function sendSip(message, jsep) {
    sip.send({
      message: message,
      jsep: jsep,
      error: function (e) {
        showError("Janus refused the SIP plugin's " + message.request + ": " + e);
        if (message.request === "register") setState(el.regState, "failed", "registration refused");
        if (message.request === "call") setCallEnded("failed", "refused by Janus");
      },
    });
  }

  function register() {
    setState(el.regState, "registering", "registering…");
    var s = session.sip;
    // outbound_proxy: janus_sip.c sends the INVITE through NUTAG_PROXY(outbound_proxy) only; without it the
    // call would go to the dialled URI's domain, which need not resolve (503 DNS Error).
    var msg = {
      request: "register", username: s.identity, authuser: s.username, secret: s.password,
      proxy: s.proxy, outbound_proxy: s.proxy,
    };
    var name = el.displayName.value.trim();
    if (name) msg.display_name = name;
    sendSip(msg);
  }

  function onIceState(state) {
    setState(el.iceState, state === "failed" ? "failed" : state, "ICE " + state);
    if (state === "failed") {
      showError("ICE failed: no media path between this browser and Janus. Janus must announce an address " +
        "this browser can reach (janus.nat settings); STUN/TURN are off unless configured.");
    }
  }

  function onSipMessage(msg, jsep) {
    if (msg.error) {
      showError("SIP plugin error " + (msg.error_code || "") + ": " + msg.error);
      if (!inCall) setCallEnded("error", msg.error);
      return;
    }
    if (msg.call_id) el.sipCallId.textContent = msg.call_id; // for support: FreeSWITCH's sip_call_id
    var result = msg.result || {};
    var handler = SIP_EVENTS[result.event];
    if (handler) handler(result, jsep);
  }

  var SIP_EVENTS = {
    // No "registering" or "calling" handler: the page shows them as it sends the request, and janus_sip.c
    // may push those acks after "registered" or "accepted" (its handler thread races its SIP thread when the
    // far end answers at once; bench/janus_register.py counts it).
    registered: function (r) {
      setState(el.regState, "registered", "registered as " + (r.username || session.sip.identity));
      setCallControls(false);
    },
    registration_failed: function (r) {
      setState(el.regState, "failed", "registration failed");
      showError("SIP registration failed: " + r.code + " " + r.reason);
    },
    unregistered: function () { setState(el.regState, "idle", "not registered"); },
    ringing: function () { setState(el.callState, "ringing", "ringing…"); },
    proceeding: function () { setState(el.callState, "ringing", "ringing…"); },
    progress: function (r, jsep) { if (jsep) sip.handleRemoteJsep({ jsep: jsep }); },
    accepted: function (r, jsep) {
      if (jsep) sip.handleRemoteJsep({ jsep: jsep, error: function (e) { showError("Bad answer SDP: " + e); } });
      setState(el.callState, "connected", "connected");
    },
    hangup: function (r) {
      // A call the page already ended (declined, failed) keeps the page's reason.
      if (["ended", "failed"].indexOf(el.callState.dataset.state) < 0) setCallEnded("ended", r.code + " " + r.reason);
    },
    incomingcall: function (r, jsep) { ringIn(r, jsep); },
    missed_call: function (r) {
      window.SwitchyardFeed.addLine(el.transcript, "missed", "Missed call", r.displayname || r.caller);
    },
  };

  // ---- calls ------------------------------------------------------------------------------------

  function targetUri(dest) {
    if (dest.indexOf("sip:") === 0) return dest;
    if (dest.indexOf("@") >= 0) return "sip:" + dest;
    return "sip:" + dest + "@" + session.sip.domain;
  }

  function micError(e) {
    if (e && e.name === "NotAllowedError") return "Microphone access was denied: allow it for this page to call.";
    if (e && e.name === "NotFoundError") return "No microphone found.";
    return "Could not open the microphone: " + (e && e.message ? e.message : e);
  }

  function call(dest) {
    if (!sip || !dest || inCall) return;
    clearError();
    inCall = true;
    el.transcript.textContent = "";
    el.sipCallId.textContent = "–";
    setCallControls(true);
    withMicrophone(function (track) {
      sip.createOffer({
        tracks: [{ type: "audio", capture: track, recv: true }],
        success: function (jsep) {
          setState(el.callState, "calling", "calling…");
          sendSip({ request: "call", uri: targetUri(dest) }, jsep);
        },
        error: function (e) {
          showError("WebRTC offer failed: " + (e && e.message ? e.message : e));
          setCallEnded("failed", "no offer");
        },
      });
    });
  }

  // Opens the microphone for a call, then hands its track to ``then``; on failure ends the call, saying why.
  function withMicrophone(then) {
    setState(el.callState, "calling", "opening microphone…");
    if (!window.isSecureContext || !navigator.mediaDevices) {
      // Browsers expose getUserMedia to secure contexts only (https:, or http://localhost).
      showError("The microphone is only available on a secure page: open this page over HTTPS (or on localhost).");
      setCallEnded("failed", "insecure page");
      return;
    }
    navigator.mediaDevices.getUserMedia({ audio: true, video: false })
      .then(function (stream) {
        localStream = stream;
        then(stream.getAudioTracks()[0]);
      })
      .catch(function (e) {
        showError(micError(e));
        setCallEnded("failed", "microphone");
      });
  }

  // ---- incoming calls ---------------------------------------------------------------------------

  function ringIn(r, jsep) {
    if (inCall || !jsep) return sendSip({ request: "decline", code: inCall ? 486 : 488 }); // busy; no offer
    clearError();
    inCall = true;
    offer = jsep;
    el.transcript.textContent = "";
    el.incomingFrom.textContent = r.displayname ? r.displayname + " <" + r.username + ">" : r.username;
    el.incoming.hidden = false;
    setState(el.callState, "incoming", "incoming call");
    setCallControls(true);
  }

  function answer() {
    var jsep = offer;
    if (!jsep) return;
    offer = null;
    el.incoming.hidden = true;
    withMicrophone(function (track) {
      sip.createAnswer({
        jsep: jsep,
        tracks: [{ type: "audio", capture: track, recv: true }],
        success: function (reply) { sendSip({ request: "accept" }, reply); },
        error: function (e) {
          showError("WebRTC answer failed: " + (e && e.message ? e.message : e));
          decline();
        },
      });
    });
  }

  function decline() {
    sendSip({ request: "decline" });
    setCallEnded("ended", "declined");
  }

  function hangup() {
    if (!sip) return;
    if (offer) return decline();
    inCall = false; // media going down from here on is ours, not an error (the SIP hangup event follows)
    sendSip({ request: "hangup" });
    sip.hangup();
  }

  function setCallEnded(state, cause) {
    inCall = false;
    offer = null;
    el.incoming.hidden = true;
    setState(el.callState, state, (state === "ended" ? "ended" : state) + (cause ? " (" + cause + ")" : ""));
    if (sip) sip.hangup();
    if (localStream) {
      localStream.getTracks().forEach(function (t) { t.stop(); });
      localStream = null;
    }
    setCallControls(false);
  }

  function setCallControls(active) {
    var registered = el.regState.dataset.state === "registered";
    el.call.disabled = active || !registered;
    el.extensions.querySelectorAll("button").forEach(function (b) { b.disabled = active || !registered; });
    el.hangup.disabled = !active;
    el.mute.disabled = !active;
    el.keypad.querySelectorAll("button").forEach(function (b) { b.disabled = !active; });
    if (!active) {
      el.mute.setAttribute("aria-pressed", "false");
      el.mute.textContent = "Mute";
    }
  }

  function toggleMute() {
    if (!sip) return;
    var muted = sip.isAudioMuted();
    if (muted) sip.unmuteAudio(); else sip.muteAudio();
    el.mute.setAttribute("aria-pressed", String(!muted));
    el.mute.textContent = muted ? "Mute" : "Unmute";
  }

  function sendDigit(digit) {
    if (!sip || !inCall) return;
    var info = function () { sendSip({ request: "dtmf_info", digit: digit }); };
    try {
      // janus.js calls RTCDTMFSender.insertDTMF, which throws when the answer has no telephone-event.
      sip.dtmf({ dtmf: { tones: digit, duration: 160, gap: 80 }, error: info });
    } catch (e) {
      info();
    }
  }

  function renderExtensions(list) {
    el.extensions.textContent = "";
    list.forEach(function (x) {
      var li = document.createElement("li");
      var b = document.createElement("button");
      b.type = "button";
      b.disabled = true;
      b.dataset.destination = x.destination;
      b.textContent = x.agent + " (" + x.destination + ")";
      b.addEventListener("click", function () { call(x.destination); });
      li.appendChild(b);
      el.extensions.appendChild(li);
    });
  }

  // ---- page -------------------------------------------------------------------------------------

  function buildKeypad() {
    KEYS.forEach(function (k) {
      var b = document.createElement("button");
      b.type = "button";
      b.disabled = true;
      b.textContent = k;
      b.dataset.digit = k;
      b.addEventListener("click", function () { sendDigit(k); });
      el.keypad.appendChild(b);
    });
  }

  function init() {
    ["error", "login", "phone", "token", "connect", "identity", "extensions", "call", "dial", "mute", "hangup",
      "keypad", "transcript", "incoming"].forEach(function (id) { el[id] = $(id); });
    el.displayName = $("display-name");
    el.regState = $("reg-state");
    el.callState = $("call-state");
    el.iceState = $("ice-state");
    el.feedState = $("feed-state");
    el.sipCallId = $("sip-call-id");
    el.remoteAudio = $("remote-audio");
    el.incomingFrom = $("incoming-from");
    el.token.value = sessionStorage.getItem(TOKEN_KEY) || "";
    buildKeypad();
    $("login-form").addEventListener("submit", onLogin);
    $("dial-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      call(el.dial.value.trim());
    });
    el.hangup.addEventListener("click", hangup);
    $("answer").addEventListener("click", answer);
    $("decline").addEventListener("click", decline);
    el.mute.addEventListener("click", toggleMute);
    window.SwitchyardApi.missingLibraries().then(function (texts) {
      if (texts.length === 0) return;
      showError(texts.join("\n"));
      el.connect.disabled = true;
    });
  }

  document.addEventListener("DOMContentLoaded", init);
})();
