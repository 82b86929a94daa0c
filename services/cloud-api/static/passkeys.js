// Passkeys on the portal: register one on the security page, sign in with one on the login
// page. Loaded as a file (the pages' CSP allows no inline script); every request carries the
// page's CSRF token in a header and JSON, which a cross-site form cannot send.
'use strict';

const b64url = {
  encode(buffer) {
    let text = '';
    for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
    return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  },
  decode(text) {
    const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
  },
};

function csrfToken() {
  const field = document.querySelector('input[name="csrf_token"]');
  return field ? field.value : '';
}

async function post(path, body) {
  const resp = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrfToken() },
    body: JSON.stringify(body),
  });
  const answer = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(answer.message || `The server answered ${resp.status}.`);
  return answer;
}

function show(status, message, isError) {
  status.textContent = message;
  status.className = isError ? 'alert error' : 'alert ok';
  status.hidden = false;
}

async function register(button, status) {
  const { ceremony, publicKey } = await post('/cloud/account/security/passkeys/options', {});
  publicKey.challenge = b64url.decode(publicKey.challenge);
  publicKey.user.id = b64url.decode(publicKey.user.id);
  for (const c of publicKey.excludeCredentials || []) c.id = b64url.decode(c.id);
  const credential = await navigator.credentials.create({ publicKey });
  const name = document.getElementById('passkey-name');
  await post('/cloud/account/security/passkeys', {
    ceremony,
    name: name ? name.value : '',
    credential: {
      id: credential.id,
      rawId: b64url.encode(credential.rawId),
      type: credential.type,
      response: {
        attestationObject: b64url.encode(credential.response.attestationObject),
        clientDataJSON: b64url.encode(credential.response.clientDataJSON),
      },
      extensions: credential.getClientExtensionResults(),
    },
  });
  window.location.assign('/cloud/account/security?notice=passkey-added');
}

async function signIn(button, status) {
  const { ceremony, publicKey } = await post('/cloud/login/passkey/options', {});
  publicKey.challenge = b64url.decode(publicKey.challenge);
  for (const c of publicKey.allowCredentials || []) c.id = b64url.decode(c.id);
  // A button press asks at once (the crate's options are for autofill, `conditional`).
  const assertion = await navigator.credentials.get({ publicKey });
  const returnTo = document.querySelector('input[name="return_to"]');
  const { redirect } = await post('/cloud/login/passkey', {
    ceremony,
    returnTo: returnTo ? returnTo.value : '',
    credential: {
      id: assertion.id,
      rawId: b64url.encode(assertion.rawId),
      type: assertion.type,
      response: {
        authenticatorData: b64url.encode(assertion.response.authenticatorData),
        clientDataJSON: b64url.encode(assertion.response.clientDataJSON),
        signature: b64url.encode(assertion.response.signature),
        userHandle: assertion.response.userHandle ? b64url.encode(assertion.response.userHandle) : null,
      },
      extensions: assertion.getClientExtensionResults(),
    },
  });
  window.location.assign(redirect);
}

for (const [id, action] of [['passkey-add', register], ['passkey-sign-in', signIn]]) {
  const button = document.getElementById(id);
  if (!button) continue;
  const status = document.getElementById(`${id}-status`);
  if (!window.PublicKeyCredential) {
    show(status, 'This browser cannot use passkeys.', true);
    continue;
  }
  button.hidden = false;
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await action(button, status);
    } catch (e) {
      show(status, e.name === 'NotAllowedError' ? 'The passkey request was cancelled or timed out.' : e.message, true);
    } finally {
      button.disabled = false;
    }
  });
}
