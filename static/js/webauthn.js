// WebAuthn for portcullis: adding security keys and passkeys, and signing in with them.
//
// Forms marked `data-webauthn="register" | "mfa" | "passkey"` are taken over here; without
// this script they post to a page that explains JavaScript is needed. The server sends
// webauthn-rs's options as JSON (binary fields base64url) and keeps the ceremony state;
// this file only converts between base64url and ArrayBuffer and talks to the browser.
(function () {
  "use strict";

  function toBuffer(b64url) {
    var s = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toBase64url(buf) {
    if (!buf) return null;
    var bytes = new Uint8Array(buf);
    var s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(json) {
    var pk = json.publicKey;
    pk.challenge = toBuffer(pk.challenge);
    pk.user.id = toBuffer(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = toBuffer(c.id); });
    return pk;
  }

  function requestOptions(json) {
    var pk = json.publicKey;
    pk.challenge = toBuffer(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = toBuffer(c.id); });
    return pk;
  }

  function registrationJSON(cred) {
    return {
      id: cred.id,
      rawId: toBase64url(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: toBase64url(cred.response.attestationObject),
        clientDataJSON: toBase64url(cred.response.clientDataJSON),
        transports: cred.response.getTransports ? cred.response.getTransports() : undefined
      },
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    };
  }

  function assertionJSON(cred) {
    return {
      id: cred.id,
      rawId: toBase64url(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toBase64url(cred.response.authenticatorData),
        clientDataJSON: toBase64url(cred.response.clientDataJSON),
        signature: toBase64url(cred.response.signature),
        userHandle: toBase64url(cred.response.userHandle)
      },
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    };
  }

  // Posts JSON with the page's CSRF token; resolves to the parsed body, or throws an
  // Error carrying the server's message (and follows its redirect, e.g. to re-authenticate).
  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(body || {})
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (!res.ok) {
          if (data.redirect) { window.location.assign(data.redirect); }
          throw new Error(data.error || "That did not work. Reload the page and try again.");
        }
        return data;
      });
    });
  }

  // Words for what the browser says when it refuses or the user cancels.
  function explain(err) {
    if (!err) return "That did not work. Try again.";
    switch (err.name) {
      case "NotAllowedError":
        return "The request was cancelled or timed out, or no security key or passkey answered. Try again.";
      case "InvalidStateError":
        return "This security key or passkey is already registered.";
      case "NotSupportedError":
        return "This browser or device does not support security keys or passkeys.";
      case "SecurityError":
        return "The browser refused: this page's address does not match the site's settings.";
      case "AbortError":
        return null;
      default:
        return err.message || "That did not work. Try again.";
    }
  }

  function show(message) {
    var el = document.querySelector(".webauthn-error");
    if (!el || !message) return;
    el.textContent = message;
    el.hidden = false;
  }

  function supported() {
    if (window.PublicKeyCredential && navigator.credentials) return true;
    show("This browser does not support security keys or passkeys.");
    return false;
  }

  function csrfOf(form) {
    var input = form.querySelector('input[name="csrf_token"]');
    return input ? input.value : "";
  }

  function nextOf(form) {
    var input = form.querySelector('input[name="next"]');
    return input ? input.value : null;
  }

  function register(form, kind) {
    var csrf = csrfOf(form);
    var name = form.querySelector('input[name="name"]').value;
    return post("/account/security-keys/register/start", csrf, { kind: kind, name: name })
      .then(function (options) {
        return navigator.credentials.create({ publicKey: creationOptions(options) });
      })
      .then(function (cred) {
        return post("/account/security-keys/register/finish", csrf, { credential: registrationJSON(cred) });
      });
  }

  function secondFactor(form) {
    var csrf = csrfOf(form);
    return post("/login/webauthn/start", csrf)
      .then(function (options) {
        return navigator.credentials.get({ publicKey: requestOptions(options) });
      })
      .then(function (cred) {
        return post("/login/webauthn/finish", csrf, { credential: assertionJSON(cred) });
      });
  }

  function reauth(form) {
    var csrf = csrfOf(form);
    return post("/login/reauth/webauthn/start", csrf)
      .then(function (options) {
        return navigator.credentials.get({ publicKey: requestOptions(options) });
      })
      .then(function (cred) {
        return post("/login/reauth/webauthn/finish", csrf, { credential: assertionJSON(cred), next: nextOf(form) });
      });
  }

  // One passkey request at a time: the autofill one is aborted before a button press.
  var pending = null;

  function passkey(form, conditional) {
    var csrf = csrfOf(form);
    if (pending) pending.abort();
    var controller = new AbortController();
    pending = controller;
    return post("/login/passkey/start", csrf)
      .then(function (options) {
        var req = { publicKey: requestOptions(options), signal: controller.signal };
        if (conditional) req.mediation = "conditional";
        return navigator.credentials.get(req);
      })
      .then(function (cred) {
        return post("/login/passkey/finish", csrf, { credential: assertionJSON(cred), next: nextOf(form) });
      });
  }

  function done(result) {
    if (result && result.redirect) window.location.assign(result.redirect);
  }

  function fail(err) {
    show(explain(err));
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-webauthn]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        if (!supported()) return;
        var mode = form.getAttribute("data-webauthn");
        var run;
        if (mode === "register") {
          if (!form.reportValidity()) return;
          var kind = event.submitter && event.submitter.value === "passkey" ? "passkey" : "security_key";
          run = register(form, kind);
        } else if (mode === "mfa") {
          run = secondFactor(form);
        } else if (mode === "reauth") {
          run = reauth(form);
        } else {
          run = passkey(form, false);
        }
        run.then(done, fail);
      });
    });

    // Passkeys offered in the email field's autofill (conditional UI), where supported.
    var form = document.querySelector('form[data-webauthn="passkey"]');
    if (form && window.PublicKeyCredential &&
        PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
        if (ok) passkey(form, true).then(done, fail);
      });
    }
  });
})();
