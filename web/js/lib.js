// @ts-check
// DOM building, the API client and formatting. Text always goes in as text nodes, never as HTML:
// run names, layer names and error messages come from users.

/**
 * h('div', {class: 'x', onclick: fn}, 'text', child, [more children])
 * @param {string} tag
 * @param {Record<string, unknown> | null} [attrs]
 * @param {...unknown} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), /** @type {EventListener} */ (v));
    else if (k === 'dataset' && typeof v === 'object') Object.assign(el.dataset, v);
    else if (k === 'value' && 'value' in el) /** @type {HTMLInputElement} */ (el).value = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** @param {Element} el @param {unknown[]} children */
function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** @param {Element} el @param {...unknown} children */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** A problem+json error from the API. */
export class ApiError extends Error {
  /** @param {number} status @param {{title?: string, detail?: string, errors?: {pointer: string, detail: string}[]}} problem */
  constructor(status, problem) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** The session's CSRF token (AUTH=required), echoed on every state-changing request. */
let csrfToken = /** @type {string | null} */ (null);
/** Called when the API answers 401: the app shows the login form. */
let onUnauthorized = () => {};

/** @param {string | null} token */
export function setCsrfToken(token) {
  csrfToken = token;
}
/** @param {() => void} fn */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/**
 * JSON over fetch, same origin (the session cookie goes along by itself).
 * @param {string} path
 * @param {{method?: string, body?: unknown, accept?: string}} [opts]
 * @returns {Promise<any>}
 */
export async function api(path, opts = {}) {
  const method = opts.method ?? 'GET';
  /** @type {Record<string, string>} */
  const headers = { accept: opts.accept ?? 'application/json' };
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  const res = await fetch(path, { method, headers, body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined, credentials: 'same-origin' });
  const type = res.headers.get('content-type') ?? '';
  const body = res.status === 204 ? null : type.includes('json') ? await res.json() : await res.text();
  if (!res.ok) {
    if (res.status === 401 && !path.startsWith('/auth/')) onUnauthorized();
    throw new ApiError(res.status, typeof body === 'object' && body ? body : { detail: String(body) });
  }
  return body;
}

/** @param {number | null | undefined} v @param {number} [digits] */
export function num(v, digits = 4) {
  return v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits);
}
/** @param {number | null | undefined} v */
export function pct(v) {
  return v === null || v === undefined ? '—' : `${(v * 100).toFixed(2)} %`;
}
/** @param {number | null | undefined} v */
export function int(v) {
  return v === null || v === undefined ? '—' : Math.round(v).toLocaleString('en-US');
}

/** "3 min ago" @param {string | null | undefined} iso */
export function age(iso) {
  if (!iso) return '—';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** @param {string} status */
export function badge(status) {
  return h('span', { class: `badge ${status}`, dataset: { status } }, status);
}

/**
 * "C32 P D C64 P D F 256 47 · l2 kernel, l1_l2 activity" from a normalized spec.
 * @param {any} spec
 */
export function modelSummary(spec) {
  if (!spec?.model?.layers) return '—';
  if (spec.preset) return `preset ${spec.preset}`;
  const short = spec.model.layers.map((/** @type {any} */ l) =>
    l.type === 'Conv2D'
      ? `C${l.filters}`
      : l.type === 'Dense'
        ? `${l.units}`
        : l.type === 'MaxPooling2D'
          ? 'P'
          : l.type === 'Dropout'
            ? 'D'
            : l.type === 'Flatten'
              ? 'F'
              : l.type,
  );
  const regs = new Set();
  for (const l of spec.model.layers) {
    for (const slot of ['kernel', 'bias', 'activity']) {
      const r = l[`${slot}Regularizer`];
      if (r) regs.add(`${r.type} ${slot}`);
    }
  }
  return short.join(' ') + (regs.size ? ` · ${[...regs].join(', ')}` : ' · no regularizer');
}

/** A normalized spec (what GET /v1/runs/:id returns) back into a request body: nulls and derived fields dropped. */
/** @param {any} spec */
export function requestFromSpec(spec) {
  /** @param {any} v @returns {any} */
  const strip = (v) => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === 'object') {
      /** @type {Record<string, unknown>} */
      const out = {};
      for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = strip(x);
      return out;
    }
    return v;
  };
  const { model, training, dataset } = strip(spec);
  const ds = { ...dataset };
  delete ds.seed; // the run's sampling seed is training.seed's business; the request has none
  return { name: spec.name ? `${spec.name} (again)` : undefined, model, training, dataset: ds };
}

/** Runs `fn` now and every `ms` until the returned stop is called. @param {() => Promise<void>} fn @param {number} ms */
export function every(fn, ms) {
  let stopped = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const tick = async () => {
    try {
      await fn();
    } catch (err) {
      if (!(err instanceof ApiError)) console.warn(err);
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  void tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
export const TERMINAL_EVENTS = new Set(['completed', 'failed', 'cancelled']);
