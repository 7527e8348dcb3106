// @ts-check
// The dashboard's shell: hash routes, the login form (AUTH=required) and the header.
//   #/runs[?status=…]   #/runs/<id>   #/studies   #/studies/<id>   #/new[?kind=study|from=<run id>]
import { api, ApiError, h, replace, setCsrfToken, setUnauthorizedHandler } from './lib.js';
import { runPage, runsPage } from './runs.js';
import { studiesPage, studyPage } from './studies.js';
import { newPage } from './new.js';

const main = /** @type {HTMLElement} */ (document.getElementById('main'));
const who = /** @type {HTMLElement} */ (document.getElementById('who'));
/** @type {(() => void) | null} */
let cleanup = null;
let session = /** @type {{auth: string, owner: string | null, csrfToken: string | null} | null} */ (null);

function route() {
  cleanup?.();
  cleanup = null;
  if (session?.auth === 'required' && !session.owner) {
    loginPage();
    return;
  }
  const [path = '', q = ''] = location.hash.replace(/^#/, '').split('?');
  const query = new URLSearchParams(q);
  const parts = path.split('/').filter(Boolean);
  for (const a of document.querySelectorAll('header nav a')) a.classList.toggle('active', a.getAttribute('data-nav') === (parts[0] ?? 'runs'));
  const uuid = /^[0-9a-f-]{36}$/i;
  if (parts[0] === 'runs' && parts[1] && uuid.test(parts[1])) cleanup = runPage(main, parts[1]);
  else if (parts[0] === 'studies' && parts[1] && uuid.test(parts[1])) cleanup = studyPage(main, parts[1]);
  else if (parts[0] === 'studies') cleanup = studiesPage(main);
  else if (parts[0] === 'new') cleanup = newPage(main, query);
  else cleanup = runsPage(main, query);
}

function renderWho() {
  if (session?.auth !== 'required') {
    replace(who, 'auth off: every run visible');
    return;
  }
  if (!session.owner) {
    replace(who);
    return;
  }
  replace(
    who,
    `signed in as ${session.owner} `,
    h(
      'button',
      {
        id: 'logout',
        onclick: async () => {
          await api('/auth/session', { method: 'DELETE' }).catch(() => {});
          session = { auth: 'required', owner: null, csrfToken: null };
          setCsrfToken(null);
          renderWho();
          route();
        },
      },
      'Sign out',
    ),
  );
}

function loginPage() {
  const key = /** @type {HTMLInputElement} */ (h('input', { id: 'api-key', type: 'password', autocomplete: 'off', placeholder: 'rg_…', size: 52 }));
  const error = h('div', { class: 'field-error', id: 'login-error' });
  replace(
    main,
    h('h1', null, 'Sign in'),
    h(
      'p',
      { class: 'muted' },
      'This server requires an API key (AUTH=required). Create one with ',
      h('code', null, 'node dist/main.js create-key --owner <you>'),
      '.',
    ),
    h('p', { class: 'muted' }, 'The key is sent once to open a session: the browser keeps an HttpOnly session cookie, not the key.'),
    h(
      'form',
      {
        id: 'login',
        class: 'toolbar',
        onsubmit: async (/** @type {Event} */ e) => {
          e.preventDefault();
          try {
            session = await api('/auth/session', { method: 'POST', body: { key: key.value } });
            setCsrfToken(session?.csrfToken ?? null);
            renderWho();
            route();
          } catch (err) {
            error.textContent = err instanceof ApiError ? err.message : String(err);
          }
        },
      },
      key,
      h('button', { class: 'primary', type: 'submit' }, 'Sign in'),
    ),
    error,
  );
}

setUnauthorizedHandler(() => {
  // The session expired or its key was revoked: ask again.
  if (session?.auth === 'required' && session.owner) {
    session = { auth: 'required', owner: null, csrfToken: null };
    setCsrfToken(null);
    renderWho();
    route();
  }
});

window.addEventListener('hashchange', route);
void (async () => {
  session = await api('/auth/session');
  setCsrfToken(session?.csrfToken ?? null);
  renderWho();
  route();
})();
