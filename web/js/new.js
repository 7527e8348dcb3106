// @ts-check
// New run or study: start from a preset or an existing run, edit in the form or as JSON. The server
// validates against the same TypeBox schema as every client's request; its errors come back with
// a JSON pointer each, shown at the form field that pointer names (or under the JSON).
import { api, ApiError, h, replace, requestFromSpec } from './lib.js';

const DATASETS = [
  'emnist-sample',
  'emnist-balanced',
  'emnist-bymerge',
  'emnist-byclass',
  'emnist-digits',
  'emnist-letters',
  'emnist-mnist',
  'mnist',
  'fashion-mnist',
];

/** Form fields and the request pointer each one edits. */
const FIELDS = /** @type {const} */ ([
  { id: 'name', label: 'Name', pointer: '/name', type: 'text' },
  { id: 'dataset', label: 'Dataset', pointer: '/dataset/name', type: 'select' },
  { id: 'limit', label: 'Training images (limit)', pointer: '/dataset/limit', type: 'number' },
  { id: 'epochs', label: 'Epochs', pointer: '/training/epochs', type: 'number' },
  { id: 'batchSize', label: 'Batch size', pointer: '/training/batchSize', type: 'number', placeholder: '250 (default)' },
  {
    id: 'learningRate',
    label: 'Learning rate',
    pointer: '/training/optimizer/learningRate',
    type: 'number',
    placeholder: "the optimizer's default (Adam: 0.001)",
  },
  { id: 'priority', label: 'Priority (1 soonest … 100)', pointer: '/priority', type: 'number', placeholder: '50 (default)' },
]);

/** @param {any} obj @param {string} pointer */
function getAt(obj, pointer) {
  return pointer
    .split('/')
    .slice(1)
    .reduce((o, k) => (o == null ? undefined : o[k]), obj);
}
/** @param {any} obj @param {string} pointer @param {unknown} value */
function setAt(obj, pointer, value) {
  const keys = pointer.split('/').slice(1);
  let o = obj;
  for (const k of keys.slice(0, -1)) {
    if (typeof o[k] !== 'object' || o[k] === null) o[k] = {};
    o = o[k];
  }
  const last = /** @type {string} */ (keys.at(-1));
  if (value === undefined || value === '') delete o[last];
  else o[last] = value;
}

/** @param {HTMLElement} main @param {URLSearchParams} query */
export function newPage(main, query) {
  const kind = query.get('kind') === 'study' ? 'study' : 'run';
  const from = query.get('from');
  let closed = false;
  /** The request being edited: the JSON is the truth, the form edits parts of it. */
  let request = /** @type {any} */ ({});
  const presetSelect = /** @type {HTMLSelectElement} */ (h('select', { id: 'start' }));
  const json = /** @type {HTMLTextAreaElement} */ (h('textarea', { id: 'json', rows: 18, spellcheck: 'false' }));
  const jsonError = h('div', { class: 'field-error', id: 'json-error' });
  const formError = h('div');
  /** @type {Record<string, HTMLInputElement | HTMLSelectElement>} */
  const inputs = {};
  /** @type {Record<string, HTMLElement>} */
  const errors = {};

  const syncForm = () => {
    for (const f of FIELDS) {
      const v = getAt(request, f.pointer);
      const input = inputs[f.id];
      if (input) input.value = v === undefined ? '' : String(v);
    }
  };
  const syncJson = () => {
    json.value = JSON.stringify(request, null, 2);
    jsonError.textContent = '';
  };
  const clearErrors = () => {
    for (const e of Object.values(errors)) e.textContent = '';
    for (const i of Object.values(inputs)) i.classList.remove('invalid');
    jsonError.textContent = '';
    replace(formError);
  };

  const fields = FIELDS.map((f) => {
    const input =
      f.type === 'select'
        ? /** @type {HTMLSelectElement} */ (
            h(
              'select',
              { id: `f-${f.id}` },
              DATASETS.map((d) => h('option', { value: d }, d)),
            )
          )
        : /** @type {HTMLInputElement} */ (
            h('input', {
              id: `f-${f.id}`,
              type: f.type,
              step: f.id === 'learningRate' ? 'any' : undefined,
              placeholder: 'placeholder' in f ? f.placeholder : undefined,
            })
          );
    inputs[f.id] = input;
    errors[f.id] = h('div', { class: 'field-error', id: `e-${f.id}` });
    input.addEventListener('input', () => {
      const raw = input.value.trim();
      const v = f.type === 'number' ? (raw === '' ? undefined : Number(raw)) : raw === '' ? undefined : raw;
      setAt(request, f.pointer, v);
      // The schema requires the optimizer's type next to its learning rate: Adam, Regula's default.
      if (f.id === 'learningRate' && v !== undefined && getAt(request, '/training/optimizer/type') === undefined)
        setAt(request, '/training/optimizer/type', 'adam');
      syncJson();
    });
    return [h('label', { for: `f-${f.id}` }, f.label), h('div', { class: 'field' }, input, errors[f.id])];
  });

  json.addEventListener('input', () => {
    try {
      request = JSON.parse(json.value);
      jsonError.textContent = '';
      syncForm();
    } catch (err) {
      jsonError.textContent = `Not valid JSON: ${err instanceof Error ? err.message : String(err)}`;
    }
  });

  let autoName = /** @type {string | undefined} */ (undefined);
  let baselineLayers = /** @type {unknown[]} */ ([]);
  /** @param {string} value */
  const startFrom = async (value) => {
    // A name the user typed stays; one this function chose follows the start choice.
    const typed = getAt(request, '/name');
    const name = typed === autoName ? undefined : typed;
    const keep = { dataset: request.dataset, training: request.training, priority: request.priority };
    if (value.startsWith('preset:')) {
      autoName = `${value.slice(7)} on ${request.dataset?.name ?? 'emnist-balanced'}`;
      request = { name: name ?? autoName, preset: value.slice(7), ...keep };
    } else if (value === 'study:tutorial') {
      autoName = 'tutorial';
      request = { name: name ?? autoName, preset: 'tutorial', ...keep };
    } else if (value === 'study:grid') {
      request = {
        name: name ?? (autoName = 'L2 on kernels, three λ'),
        // A grid regularizes the layers of base.model: the tutorial's CNN, from its preset.
        base: { model: { layers: baselineLayers } },
        grid: { type: ['l2'], target: ['kernel'], lambda: [0.0001, 0.001, 0.01] },
        ...keep,
      };
    } else if (value.startsWith('run:')) {
      const run = await api(`/v1/runs/${value.slice(4)}`);
      request = { ...requestFromSpec(run.spec), priority: run.priority };
      autoName = request.name;
    }
    syncForm();
    syncJson();
  };

  const submit = async (/** @type {Event} */ e) => {
    e.preventDefault();
    clearErrors();
    try {
      request = JSON.parse(json.value);
    } catch (err) {
      jsonError.textContent = `Not valid JSON: ${err instanceof Error ? err.message : String(err)}`;
      return;
    }
    const button = /** @type {HTMLButtonElement} */ (main.querySelector('#submit'));
    button.disabled = true;
    try {
      const created = await api(kind === 'study' ? '/v1/studies' : '/v1/runs', { method: 'POST', body: request });
      location.hash = kind === 'study' ? `#/studies/${created.id}` : `#/runs/${created.id}`;
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      const list = err.problem.errors ?? [];
      const unplaced = [];
      for (const item of list) {
        const f = FIELDS.find((x) => item.pointer === x.pointer || item.pointer.startsWith(`${x.pointer}/`));
        const target = f ? errors[f.id] : undefined;
        if (f && target) {
          target.textContent = item.detail;
          inputs[f.id]?.classList.add('invalid');
        } else unplaced.push(item);
      }
      if (unplaced.length) jsonError.replaceChildren(...unplaced.map((i) => h('div', null, h('code', null, i.pointer || '/'), ' ', i.detail)));
      replace(formError, h('div', { class: 'notice error', id: 'form-error' }, `${err.problem.title ?? 'Error'}: ${err.problem.detail ?? ''}`));
    } finally {
      button.disabled = false;
    }
  };

  const tabs = h(
    'div',
    { class: 'tabs' },
    ['run', 'study'].map((k) =>
      h(
        'button',
        { type: 'button', 'aria-pressed': String(k === kind), onclick: () => (location.hash = k === 'study' ? '#/new?kind=study' : '#/new') },
        k === 'run' ? 'Run' : 'Study',
      ),
    ),
  );

  replace(
    main,
    h('h1', null, kind === 'study' ? 'New study' : 'New run'),
    h(
      'p',
      { class: 'muted' },
      kind === 'study'
        ? 'A study trains one run per variant and ranks them. Start from the tutorial’s eight configurations or a λ grid, then edit.'
        : 'Start from one of the tutorial’s presets or an earlier run, then change what you like in the form or the JSON.',
    ),
    tabs,
    formError,
    h(
      'form',
      { class: 'spec-form', id: 'new-form', onsubmit: submit, novalidate: true },
      h('label', { for: 'start' }, 'Start from'),
      h('div', { class: 'field' }, presetSelect),
      fields,
      h('label', { for: 'json' }, 'Request (JSON)'),
      h(
        'div',
        { class: 'field' },
        json,
        jsonError,
        h('span', { class: 'muted' }, kind === 'study' ? 'POST /v1/studies' : 'POST /v1/runs', ' — the form and this JSON edit the same request.'),
      ),
      h('span'),
      h('div', null, h('button', { class: 'primary', type: 'submit', id: 'submit' }, kind === 'study' ? 'Start study' : 'Start run')),
    ),
  );

  void (async () => {
    // The defaults: the built-in sample, small enough to train in about a minute on a laptop.
    request =
      kind === 'study'
        ? { training: { epochs: 2 }, dataset: { name: 'emnist-sample', limit: 2000 } }
        : { training: { epochs: 2 }, dataset: { name: 'emnist-sample', limit: 2000 } };
    const { items: presets } = await api('/v1/presets');
    if (closed) return;
    baselineLayers = presets.find((/** @type {any} */ p) => p.name === 'baseline')?.model.layers ?? [];
    /** @type {HTMLElement[]} */
    const options = [];
    if (kind === 'study') {
      options.push(
        h('option', { value: 'study:tutorial' }, "the tutorial's eight configurations"),
        h('option', { value: 'study:grid' }, 'a grid: l2 on kernels × three λ'),
      );
    } else {
      for (const p of presets) options.push(h('option', { value: `preset:${p.name}` }, `preset ${p.name}: ${p.description}`));
      if (from) options.unshift(h('option', { value: `run:${from}` }, `run ${from.slice(0, 8)} (its spec)`));
    }
    replace(presetSelect, options);
    presetSelect.onchange = () => void startFrom(presetSelect.value);
    await startFrom(presetSelect.value);
  })();

  return () => {
    closed = true;
  };
}
