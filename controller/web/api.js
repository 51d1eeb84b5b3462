// Switchyard phone: sign-in (POST /v1/webrtc/signin with extension + password, or an invite code) for a
// short-lived webrtc credential, then the browser session (POST /v1/webrtc/session with it). The reply holds the SIP identity and password, the Janus URL and token, the feed token, the agent extensions
// and expires_at. Also why a Debian library the page needs did not load. Plain JS, no build step; used by
// phone.js.
(function () {
  "use strict";

  function failure(path, status, body) {
    var reason = body && body.error ? body.error.reason : "";
    if (status === 401) return "The controller refused the sign-in (401" + (reason ? ": " + reason : "") + ").";
    if (status === 429) return "Too many failed sign-ins (429" + (reason ? ": " + reason : "") + ").";
    return "POST " + path + " failed (" + status + (reason ? ": " + reason : "") + ").";
  }

  function post(path, headers, body) {
    headers["Content-Type"] = "application/json";
    return fetch(path, { method: "POST", headers: headers, body: JSON.stringify(body) }).then(function (r) {
      return r.json().catch(function () { return null; }).then(function (data) {
        if (r.status !== 201 || !data) throw new Error(failure(path, r.status, data));
        return data;
      });
    });
  }

  // A promise of the credential: body is {extension, password} or {invite}.
  function signIn(body) {
    return post("v1/webrtc/signin", {}, body);
  }

  // A promise of the session; rejected with an Error whose message says what the controller answered.
  function createSession(token, displayName) {
    var body = displayName ? { display_name: displayName } : {};
    return post("v1/webrtc/session", { Authorization: "Bearer " + token }, body);
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

  window.SwitchyardApi = { signIn: signIn, createSession: createSession, missingLibraries: missingLibraries };
})();
