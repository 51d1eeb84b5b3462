// Switchyard phone: the controller's browser session (POST /v1/webrtc/session with the API token). The
// reply holds the SIP identity and password, the Janus URL and token, the feed token, the agent extensions
// and expires_at. Also why a Debian library the page needs did not load. Plain JS, no build step; used by
// phone.js.
(function () {
  "use strict";

  function failure(status, body) {
    var reason = body && body.error ? body.error.reason : "";
    if (status === 401) return "The controller refused the API token (401" + (reason ? ": " + reason : "") + ").";
    return "POST /v1/webrtc/session failed (" + status + (reason ? ": " + reason : "") + ").";
  }

  // A promise of the session; rejected with an Error whose message says what the controller answered.
  function createSession(token, displayName) {
    var body = displayName ? { display_name: displayName } : {};
    return fetch("v1/webrtc/session", {
      method: "POST",
      headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    }).then(function (r) {
      return r.json().catch(function () { return null; }).then(function (data) {
        if (r.status !== 201 || !data) throw new Error(failure(r.status, data));
        return data;
      });
    });
  }

  // The controller answers 503 with a plain-text reason when a Debian library file is missing.
  function explainMissing(url, name) {
    return fetch(url, { cache: "no-store" })
      .then(function (r) {
        return r.text().then(function (t) { return name + " is unavailable (HTTP " + r.status + "): " + t.trim(); });
      })
      .catch(function (e) { return name + " could not be loaded: " + e; });
  }

  // A promise of one text per library (adapter.js, janus.js) that did not load: empty when both did.
  function missingLibraries() {
    var missing = [];
    if (typeof window.adapter === "undefined") missing.push(explainMissing("phone/adapter.js", "adapter.js"));
    if (typeof window.Janus === "undefined") missing.push(explainMissing("phone/janus.js", "janus.js"));
    return Promise.all(missing);
  }

  window.SwitchyardApi = { createSession: createSession, missingLibraries: missingLibraries };
})();
