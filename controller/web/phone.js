// Switchyard browser phone: POST /v1/webrtc/session (api.js), then Janus (janus.js) + its SIP plugin, plus
// the controller's event feed for the live transcript (feed.js). Plain JS, no build step, no external URLs.
//
// Janus SIP plugin requests/events used here (Janus 1.1.2, plugins/janus_sip.c and its API doc):
//   register {username: SIP URI, authuser, secret, proxy, outbound_proxy, display_name} -> registering |
//     registered | registration_failed {code, reason}
//   call {uri} + JSEP offer -> calling, ringing/proceeding, progress (+JSEP), accepted (+JSEP),
//     hangup {code, reason}
//   incomingcall {username, displayname} + JSEP offer -> accept + JSEP answer -> accepted; or decline ->
//     declining; missed_call {caller} (the plugin answered 486 itself: this handle was in a call); hangup
//   hangup -> hangingup, then hangup; dtmf_info {digit} -> dtmfsent
// DTMF goes as RFC 2833 telephone-events in the audio (janus.js handle.dtmf -> RTCDTMFSender): the SIP
// plugin relays the browser's RTP to FreeSWITCH, whose sofia profiles take RFC 2833 by default
// (dtmf-type rfc2833). Without a DTMF sender it falls back to SIP INFO (plugin request dtmf_info,
// application/dtmf-relay), which FreeSWITCH's sofia also turns into DTMF.
//
// Two state machines, one per SIP concern (a registration and an INVITE dialog are independent in SIP:
// janus_sip.c pushes "registered" for every 200 to sofia's REGISTER refreshes, calls or not): REGISTRATION
// and CALL below, each a table of state -> event -> row. A row names the next state (or stays) and the
// action; a no-op row is an event that is legal but has nothing left to do, with the reason, logged at
// debug level. The acknowledgements janus_sip.c pushes from its handler thread ("registering" after
// nua_register(), "calling" after nua_invite(), "hangingup" after nua_bye(), "declining") race the events
// its sofia thread pushes when the far end answers at once, so each is a no-op wherever it can arrive late
// (bench/janus_register.py counts the late "registering"). An event with no row in the current state is
// logged and shown, and changes nothing. Events fired while an action runs wait until it has finished, so
// every action sees the state its row named. The states are on #phone as data-registration / data-call.
(function () {
  "use strict";

  var KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];
  // The plugin's events about the registration; every other plugin event is about the call.
  var REGISTRATION_EVENTS = [
    "registering", "registered", "registration_failed", "unregistering", "unregistered",
  ];

  var el = {};
  var session = null; // POST /v1/webrtc/session reply
  var janus = null;
  var sip = null; // janus.plugin.sip handle
  var localStream = null;
  var feed = null;
  var dialled = null; // the SIP URI of the outgoing call being set up
  var offer = null; // the JSEP offer of a call ringing here, until answered or declined
  var registration = null; // the two machines, made in init()
  var call = null;

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

  // ---- state machines ---------------------------------------------------------------------------

  // Table rows: go to ``next`` and run ``action`` (with the event's arguments); stay and run ``action``;
  // or a legal event with nothing left to do, and why.
  function go(next, action) { return { next: next, action: action || null }; }
  function stay(action) { return { next: null, action: action }; }
  function noop(why) { return { next: null, action: null, why: why }; }

  // Rows shared by several states of a table: each listed state gets them (its own rows win).
  function shared(table, states, rows) {
    states.forEach(function (state) {
      Object.keys(rows).forEach(function (event) {
        if (!(event in table[state])) table[state][event] = rows[event];
      });
    });
    return table;
  }

  function Machine(name, initial, table, onChange) {
    Object.keys(table).forEach(function (state) {
      Object.keys(table[state]).forEach(function (event) {
        var next = table[state][event].next;
        if (next && !(next in table)) throw new Error(name + ": " + state + " + " + event + " -> " + next + "?");
      });
    });
    this.name = name;
    this.state = initial;
    this.table = table;
    this.onChange = onChange;
    this.queue = [];
    this.running = false;
  }

  Machine.prototype.fire = function (event) {
    this.queue.push(Array.prototype.slice.call(arguments));
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) this.step.apply(this, this.queue.shift());
    } finally {
      this.running = false;
    }
  };

  Machine.prototype.step = function (event) {
    var from = this.state;
    var row = this.table[from][event];
    if (!row) {
      var text = "Unexpected " + this.name + " event '" + event + "' while " + from + " (ignored).";
      console.warn("phone: " + text);
      showError(text);
      return;
    }
    if (row.why) {
      console.debug("phone: " + this.name + ": " + event + " in " + from + ": no-op (" + row.why + ")");
      return;
    }
    if (row.next) this.state = row.next;
    console.debug("phone: " + this.name + ": " + from + " --" + event + "--> " + this.state);
    if (row.action) row.action.apply(null, Array.prototype.slice.call(arguments, 1));
    this.onChange();
  };

  // ---- registration -----------------------------------------------------------------------------
  //
  // idle -> registering -> registered, or failed; registered -> unregistered. Events: the plugin's (above),
  // janus:attached, janus:attach-failed, janus:refused (Janus refused the register request), janus:lost
  // (the connection to Janus), janus:destroyed, error (the plugin's answer to the register request).

  var REGISTRATION = {
    idle: {
      "janus:attached": go("registering", register),
      "janus:attach-failed": go("failed", attachFailed),
      "janus:lost": go("failed", janusLost),
    },
    registering: {
      registering: noop("the register request's ack"),
      registered: go("registered", showRegistered),
      registration_failed: go("failed", registrationFailed),
      error: go("failed", registerError),
      "janus:refused": go("failed", registerRefused),
    },
    registered: {
      registering: noop("the register request's ack, pushed after 'registered' (janus_sip.c's race)"),
      registered: noop("a refresh: janus_sip.c pushes 'registered' for every 200 to a REGISTER"),
      registration_failed: go("failed", registrationFailed),
      unregistered: go("unregistered", showUnregistered),
    },
    failed: {
      registering: noop("the register request's ack, pushed after an immediate failure"),
      "janus:lost": stay(janusLost),
    },
    unregistered: {},
  };
  shared(REGISTRATION, ["registering", "registered", "unregistered"], {
    "janus:lost": go("failed", janusLost),
  });
  shared(REGISTRATION, ["registering", "registered", "failed", "unregistered"], {
    "janus:destroyed": go("idle", disconnected),
  });

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

  function showRegistered(r) {
    setState(el.regState, "registered", "registered as " + (r.username || session.sip.identity));
  }

  function registrationFailed(r) {
    setState(el.regState, "failed", "registration failed");
    showError("SIP registration failed: " + r.code + " " + r.reason);
  }

  function registerError(msg) {
    setState(el.regState, "failed", "registration failed");
    showPluginError(msg);
  }

  function registerRefused(text) {
    setState(el.regState, "failed", "registration refused");
    showError(text);
  }

  function attachFailed(e) {
    setState(el.regState, "failed", "no SIP plugin");
    showError("Could not attach the Janus SIP plugin: " + e);
  }

  // A WebSocket cannot show a certificate warning: with a self-signed certificate the browser refuses
  // wss:// silently until the certificate was accepted on an https:// page of the same host and port.
  function janusLost(e) {
    var url = session.janus_url;
    var hint = url.indexOf("wss://") === 0 ?
      " (a self-signed certificate? open " + url.replace("wss://", "https://") + "/ once and accept it)" : "";
    showError("Janus (" + url + "): " + e + hint);
    setState(el.regState, "failed", "Janus unreachable");
  }

  function showUnregistered() { setState(el.regState, "unregistered", "not registered"); }

  function disconnected() { setState(el.regState, "idle", "disconnected from Janus"); }

  // ---- call -------------------------------------------------------------------------------------
  //
  // Outgoing: idle -> preparing (microphone, offer) -> calling (INVITE sent) -> ringing | progress (early
  // media) -> in-call. Incoming: idle -> incoming -> answering (microphone, answer) -> accepting (accept
  // sent) -> in-call. in-call -> hanging-up -> idle; every call ends in idle. Events: the plugin's (above;
  // offerless_incomingcall is an incomingcall without an SDP offer, janus_sip.c's "offerless INVITE"), the
  // user's (click:call, click:answer, click:decline, click:hangup), the page's own steps (mic:ready,
  // mic:failed, offer:ready, offer:failed, answer:ready, answer:failed), Janus's (janus:refused: Janus
  // refused a request of the call; janus:lost; media:down: Janus's PeerConnection went down) and error
  // (the plugin refused a request with error_code).

  var CALL = {
    idle: {
      "click:call": go("preparing", prepareCall),
      incomingcall: go("incoming", ringIn),
      offerless_incomingcall: stay(declineOfferless),
      hangup: noop("the plugin's hangup of a call the page ended first (declined, failed)"),
      "mic:ready": stay(releaseStream),
      "offer:ready": stay(releasePeer),
      "answer:ready": stay(releasePeer),
      "mic:failed": noop("the call was ended while the microphone opened"),
      "offer:failed": noop("the call was ended while its offer was made"),
      "answer:failed": noop("the call was ended while its answer was made"),
      "janus:lost": noop("no call to end"),
      "media:down": noop("the ended call's media"),
    },
    preparing: {
      "mic:ready": stay(makeOffer),
      "mic:failed": go("idle", microphoneFailed),
      "offer:ready": go("calling", sendCall),
      "offer:failed": go("idle", offerFailed),
      "click:hangup": go("idle", cancelCall),
      incomingcall: stay(declineBusy),
      offerless_incomingcall: stay(declineBusy),
      hangup: noop("the previous call's hangup: this call's INVITE is not sent yet"),
      "media:down": noop("the previous call's media"),
    },
    calling: {
      calling: noop("the call request's ack"),
      ringing: go("ringing", showRinging),
      proceeding: go("ringing", showRinging),
      progress: go("progress", earlyMedia),
      accepted: go("in-call", connected),
      error: go("idle", callError),
      "janus:refused": go("idle", callRefused),
      "media:down": noop("no media before an answer"),
    },
    ringing: {
      ringing: noop("another provisional response"),
      proceeding: noop("another provisional response"),
      calling: noop("the call request's ack, pushed after the far end's 180 (janus_sip.c's race)"),
      progress: go("progress", earlyMedia),
      accepted: go("in-call", connected),
      "media:down": noop("no media before an answer"),
    },
    progress: {
      progress: stay(earlyMedia),
      ringing: noop("a 180 after early media: the far end's audio already plays"),
      proceeding: noop("a provisional response after early media"),
      calling: noop("the call request's ack, pushed after the far end's 183 (janus_sip.c's race)"),
      accepted: go("in-call", connected),
      dtmfsent: noop("a dtmf_info request's ack"),
      "media:down": stay(mediaDown),
    },
    incoming: {
      "click:answer": go("answering", openMicrophone),
      "click:decline": go("idle", declineCall),
      "click:hangup": go("idle", declineCall),
      "media:down": noop("no media before the answer"),
    },
    answering: {
      "mic:ready": stay(makeAnswer),
      "mic:failed": go("idle", microphoneFailedDecline),
      "answer:ready": go("accepting", sendAccept),
      "answer:failed": go("idle", answerFailed),
      // The accept is not sent yet, and janus_sip.c ignores a hangup request while a call is only invited.
      "click:hangup": go("idle", declineCall),
      "media:down": noop("no media before the answer"),
    },
    accepting: {
      accepted: go("in-call", connected),
      "click:hangup": go("hanging-up", hangUp),
      error: go("idle", callError),
      "janus:refused": go("idle", callRefused),
      "media:down": stay(mediaDown),
    },
    "in-call": {
      calling: noop("the call request's ack, pushed after an immediate answer (janus_sip.c's race)"),
      dtmfsent: noop("a dtmf_info request's ack"),
      "media:down": stay(mediaDown),
    },
    "hanging-up": {
      hangingup: noop("the hangup request's ack"),
      calling: noop("the call request's ack, in flight when the page hung up"),
      ringing: noop("in flight when the page hung up"),
      proceeding: noop("in flight when the page hung up"),
      progress: noop("in flight when the page hung up"),
      accepted: noop("in flight when the page hung up (janus_sip.c then sends the BYE)"),
      dtmfsent: noop("a dtmf_info request's ack"),
      "janus:refused": go("idle", callRefused), // no hangup event follows a refused hangup request
      "media:down": noop("the page's own hang-up"),
    },
  };
  var CALL_STATES = Object.keys(CALL);
  var SETTING_UP = ["calling", "ringing", "progress", "incoming", "answering", "accepting"];
  // Acks of the last call's requests that can arrive once it has ended (each races the plugin's hangup).
  shared(CALL, ["idle", "preparing"], {
    calling: noop("the call request's ack, pushed after the call's immediate end (janus_sip.c's race)"),
    hangingup: noop("the hangup request's ack, pushed after the call's hangup"),
    declining: noop("the decline request's ack"),
    accepted: noop("the accept request's ack (with the page's answer), pushed after the caller's hangup"),
    dtmfsent: noop("a dtmf_info request's ack"),
  });
  shared(CALL, SETTING_UP.concat(["in-call", "hanging-up"]), { hangup: go("idle", callEnded) });
  shared(CALL, SETTING_UP.concat(["preparing", "in-call", "hanging-up"]), {
    "janus:lost": go("idle", lostJanus),
  });
  shared(CALL, SETTING_UP.concat(["in-call"]), { "click:hangup": go("hanging-up", hangUp) });
  shared(CALL, CALL_STATES, {
    // Show the refusal; the rows above end the call whose request it was.
    error: stay(showPluginError),
    "janus:refused": stay(showError),
    missed_call: stay(listMissed),
    // Features of the plugin this page does not use: NOTIFY (e.g. FreeSWITCH's message waiting), INFO and
    // MESSAGE from the far end, and the delivery reports of MESSAGE.
    notify: noop("not used by this page"),
    info: noop("not used by this page"),
    message: noop("not used by this page"),
    messagedelivery: noop("not used by this page"),
  });

  // What each call state lets the user do; dialling also needs a registration.
  var CONTROLS = {
    idle: { dial: true },
    preparing: { hangup: true },
    calling: { hangup: true },
    ringing: { hangup: true },
    progress: { hangup: true, media: true },
    incoming: { hangup: true },
    answering: { hangup: true },
    accepting: { hangup: true },
    "in-call": { hangup: true, media: true },
    "hanging-up": {},
  };

  function prepareCall(dest) {
    clearError();
    dialled = targetUri(dest);
    el.transcript.textContent = "";
    el.sipCallId.textContent = "–";
    openMicrophone();
  }

  function targetUri(dest) {
    if (dest.indexOf("sip:") === 0) return dest;
    if (dest.indexOf("@") >= 0) return "sip:" + dest;
    return "sip:" + dest + "@" + session.sip.domain;
  }

  // Opens the microphone for a call: mic:ready with the stream, or mic:failed with the text and the cause.
  function openMicrophone() {
    setState(el.callState, "calling", "opening microphone…");
    if (!window.isSecureContext || !navigator.mediaDevices) {
      // Browsers expose getUserMedia to secure contexts only (https:, or http://localhost).
      call.fire("mic:failed", "The microphone is only available on a secure page: open this page over HTTPS " +
        "(or on localhost).", "insecure page");
      return;
    }
    navigator.mediaDevices.getUserMedia({ audio: true, video: false }).then(
      function (stream) { call.fire("mic:ready", stream); },
      function (e) { call.fire("mic:failed", micError(e), "microphone"); }
    );
  }

  function micError(e) {
    if (e && e.name === "NotAllowedError") return "Microphone access was denied: allow it for this page to call.";
    if (e && e.name === "NotFoundError") return "No microphone found.";
    return "Could not open the microphone: " + (e && e.message ? e.message : e);
  }

  function describe(e) { return e && e.message ? e.message : String(e); }

  function makeOffer(stream) {
    localStream = stream;
    sip.createOffer({
      tracks: [{ type: "audio", capture: stream.getAudioTracks()[0], recv: true }],
      success: function (jsep) { call.fire("offer:ready", jsep); },
      error: function (e) { call.fire("offer:failed", e); },
    });
  }

  function sendCall(jsep) {
    setState(el.callState, "calling", "calling…");
    sendSip({ request: "call", uri: dialled }, jsep);
  }

  function makeAnswer(stream) {
    localStream = stream;
    var jsep = offer;
    offer = null;
    sip.createAnswer({
      jsep: jsep,
      tracks: [{ type: "audio", capture: stream.getAudioTracks()[0], recv: true }],
      success: function (reply) { call.fire("answer:ready", reply); },
      error: function (e) { call.fire("answer:failed", e); },
    });
  }

  function sendAccept(reply) { sendSip({ request: "accept" }, reply); }

  function microphoneFailed(text, cause) {
    showError(text);
    setCallEnded("failed", cause);
  }

  function microphoneFailedDecline(text, cause) {
    sendSip({ request: "decline" });
    microphoneFailed(text, cause);
  }

  function offerFailed(e) {
    showError("WebRTC offer failed: " + describe(e));
    setCallEnded("failed", "no offer");
  }

  function answerFailed(e) {
    showError("WebRTC answer failed: " + describe(e));
    declineCall();
  }

  function showRinging() { setState(el.callState, "ringing", "ringing…"); }

  function applyRemote(jsep) {
    if (jsep) sip.handleRemoteJsep({ jsep: jsep, error: function (e) { showError("Bad answer SDP: " + e); } });
  }

  function earlyMedia(r, jsep) {
    applyRemote(jsep);
    setState(el.callState, "ringing", "ringing… (early media)");
  }

  // accepted: the answer's SDP, unless early media brought it (or the call is incoming: the SDP was ours).
  function connected(r, jsep) {
    applyRemote(jsep);
    setState(el.callState, "connected", "connected");
  }

  function ringIn(r, jsep) {
    clearError();
    offer = jsep;
    el.transcript.textContent = "";
    el.incomingFrom.textContent = r.displayname ? r.displayname + " <" + r.username + ">" : r.username;
    setState(el.callState, "incoming", "incoming call");
  }

  function declineBusy() { sendSip({ request: "decline", code: 486 }); }

  function declineOfferless() { sendSip({ request: "decline", code: 488 }); }

  function declineCall() {
    sendSip({ request: "decline" });
    setCallEnded("ended", "declined");
  }

  function cancelCall() { setCallEnded("ended", "cancelled"); }

  function hangUp() {
    setState(el.callState, "hanging-up", "hanging up…");
    sendSip({ request: "hangup" });
    sip.hangup();
  }

  function callEnded(r) { setCallEnded("ended", r.code + " " + r.reason); }

  function callError(msg) {
    showPluginError(msg);
    setCallEnded("error", msg.error);
  }

  function callRefused(text) {
    showError(text);
    setCallEnded("failed", "refused by Janus");
  }

  function lostJanus() { setCallEnded("failed", "Janus unreachable"); }

  function mediaDown(reason) {
    showError("WebRTC media to Janus went down" + (reason ? " (" + reason + ")" : "") + ".");
  }

  function releaseStream(stream) { stream.getTracks().forEach(function (t) { t.stop(); }); }

  function releasePeer() { sip.hangup(); }

  function listMissed(r) {
    window.SwitchyardFeed.addLine(el.transcript, "missed", "Missed call", r.displayname || r.caller);
  }

  function showPluginError(msg) { showError("SIP plugin error " + (msg.error_code || "") + ": " + msg.error); }

  function setCallEnded(state, cause) {
    offer = null;
    dialled = null;
    setState(el.callState, state, state + (cause ? " (" + cause + ")" : ""));
    if (sip) sip.hangup();
    if (localStream) {
      releaseStream(localStream);
      localStream = null;
    }
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
            registration.fire("janus:lost", e);
            call.fire("janus:lost", e);
          },
          destroyed: function () { registration.fire("janus:destroyed"); },
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
        registration.fire("janus:attached");
      },
      error: function (e) { registration.fire("janus:attach-failed", e); },
      iceState: onIceState,
      webrtcState: function (up, reason) { if (!up) call.fire("media:down", reason); },
      onmessage: onSipMessage,
      onremotetrack: function (track, mid, on) {
        if (track.kind !== "audio") return;
        el.remoteAudio.srcObject = on ? new MediaStream([track]) : null;
      },
      oncleanup: function () { el.remoteAudio.srcObject = null; },
    });
  }

  // Janus's own refusals (an expired or revoked token, a destroyed session) reach send()'s error callback,
  // never onmessage: janus:refused, to the machine the request belongs to.
  function sendSip(message, jsep) {
    sip.send({
      message: message,
      jsep: jsep,
      error: function (e) {
        var text = "Janus refused the SIP plugin's " + message.request + ": " + e;
        (message.request === "register" ? registration : call).fire("janus:refused", text);
      },
    });
  }

  // A plugin error answers the request in flight: the register request while registering, else the call's.
  function onSipMessage(msg, jsep) {
    if (msg.call_id) el.sipCallId.textContent = msg.call_id; // for support: FreeSWITCH's sip_call_id
    if (msg.error) {
      (registration.state === "registering" ? registration : call).fire("error", msg);
      return;
    }
    var result = msg.result || {};
    var event = String(result.event);
    if (event === "incomingcall" && !jsep) event = "offerless_incomingcall";
    (REGISTRATION_EVENTS.indexOf(event) >= 0 ? registration : call).fire(event, result, jsep);
  }

  function onIceState(state) {
    setState(el.iceState, state === "failed" ? "failed" : state, "ICE " + state);
    if (state === "failed") {
      showError("ICE failed: no media path between this browser and Janus. Janus must announce an address " +
        "this browser can reach (janus.nat settings); STUN/TURN are off unless configured.");
    }
  }

  // ---- page -------------------------------------------------------------------------------------

  function onLogin(ev) {
    ev.preventDefault();
    var extension = el.extension.value.trim();
    if (!extension || !el.password.value) return;
    signIn({ extension: extension, password: el.password.value });
  }

  // The credential (scope webrtc, this user only) lives in memory only; the page never holds an API token.
  function signIn(body) {
    clearError();
    el.connect.disabled = true;
    var api = window.SwitchyardApi;
    api.signIn(body)
      .then(function (credential) {
        el.password.value = "";
        return api.createSession(credential.token, el.displayName.value.trim());
      })
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
        showError(e.message || String(e));
        el.connect.disabled = false;
      });
  }

  // The controls follow the machines' states (CONTROLS, and the registration for dialling).
  function render() {
    var can = CONTROLS[call.state];
    var dial = !!can.dial && registration.state === "registered";
    el.phone.dataset.registration = registration.state;
    el.phone.dataset.call = call.state;
    el.incoming.hidden = call.state !== "incoming";
    el.call.disabled = !dial;
    el.extensions.querySelectorAll("button").forEach(function (b) { b.disabled = !dial; });
    el.hangup.disabled = !can.hangup;
    el.mute.disabled = !can.media;
    el.keypad.querySelectorAll("button").forEach(function (b) { b.disabled = !can.media; });
    if (!can.media) {
      el.mute.setAttribute("aria-pressed", "false");
      el.mute.textContent = "Mute";
    }
  }

  // Mute and the keypad act on the call's media, enabled in the states that have it (CONTROLS).
  function toggleMute() {
    var muted = sip.isAudioMuted();
    if (muted) sip.unmuteAudio(); else sip.muteAudio();
    el.mute.setAttribute("aria-pressed", String(!muted));
    el.mute.textContent = muted ? "Mute" : "Unmute";
  }

  function sendDigit(digit) {
    var info = function () { sendSip({ request: "dtmf_info", digit: digit }); };
    try {
      // janus.js calls RTCDTMFSender.insertDTMF, which throws when the answer has no telephone-event.
      sip.dtmf({ dtmf: { tones: digit, duration: 160, gap: 80 }, error: info });
    } catch (e) {
      info();
    }
  }

  function dial(dest) {
    if (dest && !el.call.disabled) call.fire("click:call", dest);
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
      b.addEventListener("click", function () { dial(x.destination); });
      li.appendChild(b);
      el.extensions.appendChild(li);
    });
  }

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
    ["error", "login", "phone", "extension", "password", "connect", "identity", "extensions", "call", "dial", "mute", "hangup",
      "keypad", "transcript", "incoming"].forEach(function (id) { el[id] = $(id); });
    el.displayName = $("display-name");
    el.regState = $("reg-state");
    el.callState = $("call-state");
    el.iceState = $("ice-state");
    el.feedState = $("feed-state");
    el.sipCallId = $("sip-call-id");
    el.remoteAudio = $("remote-audio");
    el.incomingFrom = $("incoming-from");
    registration = new Machine("registration", "idle", REGISTRATION, render);
    call = new Machine("call", "idle", CALL, render);
    buildKeypad();
    render();
    $("login-form").addEventListener("submit", onLogin);
    $("dial-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      dial(el.dial.value.trim());
    });
    el.hangup.addEventListener("click", function () { call.fire("click:hangup"); });
    $("answer").addEventListener("click", function () { call.fire("click:answer"); });
    $("decline").addEventListener("click", function () { call.fire("click:decline"); });
    el.mute.addEventListener("click", toggleMute);
    window.SwitchyardApi.missingLibraries().then(function (texts) {
      if (texts.length === 0) return;
      showError(texts.join("\n"));
      el.connect.disabled = true;
    });
    // An invite link (/phone?invite=<code>) signs in once; the code leaves the address bar at once.
    var invite = new URLSearchParams(window.location.search).get("invite");
    if (invite) {
      history.replaceState(null, "", window.location.pathname);
      signIn({ invite: invite });
    }
  }

  document.addEventListener("DOMContentLoaded", init);
})();
