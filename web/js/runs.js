// @ts-check
// The Runs page (live list) and the Run page (live curves from the SSE stream, spec, events,
// downloads, cancel, predict).
import { age, api, ApiError, badge, every, h, int, modelSummary, num, pct, replace, TERMINAL, TERMINAL_EVENTS } from './lib.js';
import { lineChart, seriesTable } from './charts.js';

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

/** @param {HTMLElement} main @param {URLSearchParams} query */
export function runsPage(main, query) {
  const status = query.get('status') ?? '';
  const body = h('tbody');
  const total = h('span', { class: 'muted' });
  const filter = h(
    'select',
    {
      id: 'status-filter',
      'aria-label': 'Filter by status',
      onchange: (/** @type {Event} */ e) => {
        const v = /** @type {HTMLSelectElement} */ (e.target).value;
        location.hash = v ? `#/runs?status=${v}` : '#/runs';
      },
    },
    h('option', { value: '' }, 'all statuses'),
    STATUSES.map((s) => h('option', { value: s, selected: s === status }, s)),
  );
  replace(
    main,
    h('div', { class: 'toolbar' }, h('h1', null, 'Runs'), total, h('span', { class: 'spacer' }), filter, h('a', { class: 'button', href: '#/new' }, 'New run')),
    h(
      'table',
      { id: 'runs' },
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          h('th', null, 'status'),
          h('th', null, 'name'),
          h('th', null, 'model'),
          h('th', null, 'dataset'),
          h('th', null, 'backend'),
          h('th', { class: 'num' }, 'samples/s'),
          h('th', { class: 'num' }, 'test accuracy'),
          h('th', null, 'created'),
        ),
      ),
      body,
    ),
  );
  // Polling keeps one request every 2 s for the whole list, however many runs are live; the Run
  // page is where the per-run event stream is followed.
  return every(async () => {
    const page = await api(`/v1/runs?limit=100&view=full${status ? `&status=${status}` : ''}`);
    total.textContent = `${page.total} run${page.total === 1 ? '' : 's'}`;
    replace(
      body,
      page.items.length === 0
        ? h('tr', null, h('td', { colspan: 8, class: 'muted' }, status ? `No ${status} runs.` : 'No runs yet: start one from “New run”.'))
        : null,
      page.items.map((/** @type {any} */ r) =>
        h(
          'tr',
          { dataset: { runId: r.id } },
          h('td', null, badge(r.status)),
          h('td', null, h('a', { href: `#/runs/${r.id}` }, r.name ?? r.id.slice(0, 8))),
          h('td', { class: 'mono' }, modelSummary(r.spec)),
          h('td', null, r.dataset, r.spec?.dataset?.limit ? h('span', { class: 'muted' }, ` (${int(r.spec.dataset.limit)})`) : null),
          h('td', null, r.backend ?? '—'),
          h('td', { class: 'num' }, int(r.samplesPerSec)),
          h('td', { class: 'num' }, pct(r.test?.accuracy)),
          h('td', { title: r.createdAt }, age(r.createdAt)),
        ),
      ),
    );
  }, 2000);
}

const EVENT_TYPES = [
  'queued',
  'started',
  'batch',
  'epoch',
  'early-stopped',
  'completed',
  'failed',
  'cancelled',
  'cancel-requested',
  'interrupted',
  'retrying',
  'resumed',
  'restarted',
  'shutdown',
];

/** One line about an event for the log. @param {string} type @param {any} d */
function describe(type, d) {
  switch (type) {
    case 'started':
      return `backend ${d.backend ?? '?'} · ${int(d.trainCount)} train / ${int(d.valCount)} val / ${int(d.testCount)} test images · ${d.epochs} epochs × ${d.batchesPerEpoch} batches`;
    case 'epoch':
      return `epoch ${d.epoch}/${d.epochs}: loss ${num(d.loss)} acc ${pct(d.accuracy)} · val loss ${num(d.valLoss)} val acc ${pct(d.valAccuracy)} · ${int(d.samplesPerSec)} samples/s`;
    case 'completed':
      return `test loss ${num(d.test?.loss)} · test accuracy ${pct(d.test?.accuracy)}`;
    case 'failed':
      return d.error ?? d.reason ?? '';
    case 'early-stopped':
      return `stopped after epoch ${d.epoch} (best epoch ${d.bestEpoch}, ${d.monitor} ${num(d.best)})`;
    case 'resumed':
      return `from epoch ${d.fromEpoch}`;
    case 'retrying':
      return `attempt ${d.attempt}/${d.attempts}: ${d.error ?? ''}`;
    default:
      return Object.keys(d).filter((k) => k !== 'at').length ? JSON.stringify({ ...d, at: undefined }) : '';
  }
}

/** @param {HTMLElement} main @param {string} id */
export function runPage(main, id) {
  /** @type {EventSource | null} */
  let source = null;
  /** @type {(() => void)[]} */
  const cleanups = [];
  let closed = false;

  const title = h('h1', null, 'Run');
  const status = h('span');
  const actions = h('span', { class: 'toolbar' });
  const progressText = h('span', { class: 'muted', id: 'progress-text' }, 'waiting for events…');
  const progress = /** @type {HTMLProgressElement} */ (h('progress', { max: 1, value: 0 }));
  const facts = h('dl', { class: 'kv' });
  const testBox = h('div');
  const spec = h('pre', { class: 'spec', id: 'spec' });
  const log = h('tbody');
  const downloads = h('div', { class: 'toolbar' });
  const predictBox = h('div');

  const loss = lineChart({ title: 'Loss (data loss + penalties)', series: [{ label: 'training' }, { label: 'validation', dash: true }], logY: false });
  const acc = lineChart({ title: 'Accuracy', series: [{ label: 'training' }, { label: 'validation', dash: true }], percent: true });
  const batches = lineChart({ title: 'Training loss, batch by batch', xLabel: 'epoch (batch progress)', series: [{ label: 'batch loss' }] });
  const parts = lineChart({
    title: 'Training loss split',
    series: [{ label: 'data loss' }, { label: 'kernel penalty' }, { label: 'bias penalty' }, { label: 'activity penalty' }],
  });
  batches.el.id = 'batch-chart';
  loss.el.id = 'loss-chart';
  const weightCharts = h('div', { class: 'grid' });

  replace(
    main,
    h('div', { class: 'toolbar' }, title, status, h('span', { class: 'spacer' }), actions),
    h('div', { class: 'progress' }, progress, progressText),
    facts,
    testBox,
    h('h2', null, 'Curves'),
    h('div', { class: 'grid' }, panel(loss.el), panel(acc.el), panel(batches.el), panel(parts.el)),
    h('h2', null, 'Weights per layer (Conv2D and Dense)'),
    weightCharts,
    predictBox,
    h('h2', null, 'Downloads'),
    downloads,
    h('h2', null, 'Spec (every default applied)'),
    spec,
    h('h2', null, 'Events'),
    h(
      'div',
      { class: 'events' },
      h(
        'table',
        { id: 'events' },
        h('thead', null, h('tr', null, h('th', null, '#'), h('th', null, 'event'), h('th', null, 'time'), h('th', null, 'details'))),
        log,
      ),
    ),
  );
  for (const c of [loss, acc, batches, parts]) c.mount();

  const epochs = seriesTable(4); // loss, val loss, acc, val acc
  const partRows = seriesTable(4);
  const batchRows = seriesTable(1);
  /** layer → table of [sparsity, l1, l2] per epoch */
  const layerRows = new Map();
  /** @type {Map<string, ReturnType<typeof lineChart>>} */
  const weightPlots = new Map();
  let batchEvents = 0;
  let batchLogRow = /** @type {HTMLElement | null} */ (null);
  let run = /** @type {any} */ (null);

  const redraw = () => {
    const [x, ys] = epochs.columns();
    loss.set(x, [ys[0] ?? [], ys[1] ?? []]);
    acc.set(x, [ys[2] ?? [], ys[3] ?? []]);
    const [px, pys] = partRows.columns();
    parts.set(px, pys);
    const [bx, bys] = batchRows.columns();
    batches.set(bx, bys);
    const layers = [...layerRows.keys()];
    for (const [metric, label, percent] of /** @type {const} */ ([
      ['sparsity', 'Sparsity: share of |w| < 1e-3', true],
      ['l1', 'Kernel L1 norm Σ|w|', false],
      ['l2', 'Kernel L2 norm √Σw²', false],
    ])) {
      let chart = weightPlots.get(metric);
      if (!chart || chart.el.dataset.layers !== layers.join(',')) {
        chart?.destroy();
        chart = lineChart({ title: label, series: layers.map((l) => ({ label: l })), percent });
        chart.el.dataset.layers = layers.join(',');
        const old = weightCharts.querySelector(`[data-metric="${metric}"]`);
        const p = panel(chart.el);
        p.dataset.metric = metric;
        if (old) old.replaceWith(p);
        else weightCharts.append(p);
        weightPlots.set(metric, chart);
        chart.mount();
      }
      const idx = metric === 'sparsity' ? 0 : metric === 'l1' ? 1 : 2;
      const all = new Set();
      for (const t of layerRows.values()) for (const e of t.keys()) all.add(e);
      const xs = /** @type {number[]} */ ([...all]).sort((a, b) => a - b);
      chart.set(
        xs,
        layers.map((l) => xs.map((e) => layerRows.get(l)?.get(e)?.[idx] ?? null)),
      );
    }
  };

  /** @param {number} seq @param {string} type @param {any} d */
  const logEvent = (seq, type, d) => {
    if (type === 'batch') {
      batchEvents++;
      const text = `${batchEvents} batch events; last: epoch ${d.epoch} batch ${d.batch}/${d.batches}, loss ${num(d.loss)}`;
      if (batchLogRow)
        replace(batchLogRow, h('td', null, seq), h('td', null, 'batch'), h('td', null, d.at ? new Date(d.at).toLocaleTimeString() : ''), h('td', null, text));
      else {
        batchLogRow = h('tr', null, h('td', null, seq), h('td', null, 'batch'), h('td', null, ''), h('td', null, text));
        log.prepend(batchLogRow);
      }
      return;
    }
    log.prepend(
      h(
        'tr',
        { dataset: { event: type } },
        h('td', null, seq),
        h('td', null, type),
        h('td', null, d.at ? new Date(d.at).toLocaleTimeString() : ''),
        h('td', null, describe(type, d)),
      ),
    );
  };

  /** @param {string} type @param {MessageEvent} m */
  const onEvent = (type, m) => {
    const d = JSON.parse(m.data);
    const seq = Number(m.lastEventId);
    logEvent(seq, type, d);
    if (type === 'started' || type === 'restarted') {
      if (type === 'restarted') {
        for (const t of [epochs, partRows, batchRows]) t.dropFrom(0);
        layerRows.clear();
      }
      progressText.textContent = type === 'started' ? `started on ${d.backend ?? '?'}` : 'restarted';
    } else if (type === 'resumed') {
      epochs.dropFrom(d.fromEpoch);
      partRows.dropFrom(d.fromEpoch);
      batchRows.dropFrom(d.fromEpoch - 1);
    } else if (type === 'batch') {
      batchRows.put(d.epoch - 1 + d.batch / d.batches, [d.loss]);
      progress.max = d.batches;
      progress.value = d.batch;
      progressText.textContent = `epoch ${d.epoch} · batch ${d.batch}/${d.batches} · ${int(d.samplesPerSec)} samples/s`;
    } else if (type === 'epoch') {
      epochs.put(d.epoch, [d.loss, d.valLoss, d.accuracy, d.valAccuracy]);
      const t = d.train ?? {};
      partRows.put(d.epoch, [t.dataLoss ?? null, t.kernelPenalty ?? null, t.biasPenalty ?? null, t.activityPenalty ?? null]);
      for (const w of d.weights ?? []) {
        const rows = layerRows.get(w.layer) ?? new Map();
        rows.set(d.epoch, [w.kernel.nearZero, w.kernel.l1, w.kernel.l2]);
        layerRows.set(w.layer, rows);
      }
      progress.max = d.epochs;
      progress.value = d.epoch;
      progressText.textContent = `epoch ${d.epoch}/${d.epochs} done · ${int(d.samplesPerSec)} samples/s`;
    }
    if (type !== 'queued') redraw();
    if (TERMINAL_EVENTS.has(type)) {
      // The server ends the stream after a terminal event; EventSource would reconnect forever.
      source?.close();
      source = null;
      progressText.textContent = type === 'completed' ? `finished: test accuracy ${pct(d.test?.accuracy)}` : type;
      if (type === 'completed') progress.value = progress.max;
      void refresh();
    }
  };

  const renderActions = () => {
    replace(
      actions,
      !TERMINAL.has(run.status)
        ? h('button', { class: 'danger', id: 'cancel', disabled: run.cancelRequested, onclick: cancel }, run.cancelRequested ? 'Cancelling…' : 'Cancel')
        : null,
      h('a', { class: 'button', href: `#/new?from=${run.id}`, id: 'again' }, 'Run again with…'),
    );
  };

  async function cancel() {
    try {
      run = await api(`/v1/runs/${id}/cancel`, { method: 'POST' });
      render();
    } catch (err) {
      actions.append(h('span', { class: 'error' }, err instanceof Error ? err.message : String(err)));
    }
  }

  const render = () => {
    title.textContent = run.name ?? `Run ${run.id.slice(0, 8)}`;
    replace(status, badge(run.status));
    renderActions();
    replace(
      facts,
      h('dt', null, 'id'),
      h('dd', { class: 'mono' }, run.id),
      h('dt', null, 'model'),
      h('dd', { class: 'mono' }, modelSummary(run.spec), ` · ${int(run.paramCount)} parameters`),
      h('dt', null, 'dataset'),
      h('dd', null, run.dataset, run.spec?.dataset?.limit ? ` (limit ${int(run.spec.dataset.limit)})` : ''),
      h('dt', null, 'backend'),
      h('dd', null, run.backend ?? '—', run.backendNote ? h('span', { class: 'muted' }, ` (${run.backendNote})`) : null),
      h('dt', null, 'created'),
      h('dd', { title: run.createdAt }, age(run.createdAt)),
      run.error ? [h('dt', null, 'error'), h('dd', { class: 'error' }, run.error)] : null,
    );
    if (run.test) {
      replace(
        testBox,
        h(
          'div',
          { class: 'notice', id: 'test-metrics' },
          `Test accuracy ${pct(run.test.accuracy)} · test loss ${num(run.test.loss)} · ${int(run.samplesPerSec)} samples/s in the last epoch`,
        ),
      );
    }
    spec.textContent = JSON.stringify(run.spec, null, 2);
    const self = `/v1/runs/${run.id}`;
    replace(
      downloads,
      h('a', { href: `${self}/metrics`, target: '_blank' }, 'metrics.json'),
      run.status === 'succeeded'
        ? [
            h('a', { href: `${self}/model`, target: '_blank' }, 'model.json'),
            h('a', { href: `${self}/model/weights.bin`, download: 'weights.bin' }, 'weights.bin'),
          ]
        : null,
      ['loss', 'accuracy'].map((c) => [
        h('a', { href: `${self}/charts/${c}.svg`, target: '_blank' }, `${c}.svg`),
        h('a', { href: `${self}/charts/${c}.png`, target: '_blank' }, `${c}.png`),
      ]),
    );
    if (run.status === 'succeeded' && !predictBox.firstChild) replace(predictBox, predictPanel(run.id));
  };

  const refresh = async () => {
    run = await api(`/v1/runs/${id}`);
    if (!closed) render();
  };

  void (async () => {
    try {
      await refresh();
    } catch (err) {
      replace(main, h('div', { class: 'notice error' }, err instanceof ApiError && err.status === 404 ? `Run ${id} not found.` : String(err)));
      return;
    }
    if (closed) return;
    source = new EventSource(`/v1/runs/${id}/events`);
    for (const t of EVENT_TYPES) source.addEventListener(t, (m) => onEvent(t, /** @type {MessageEvent} */ (m)));
    // The status line (cancelRequested, finishedAt) is not in the events: a light poll keeps it true.
    cleanups.push(
      every(async () => {
        if (run && !TERMINAL.has(run.status)) await refresh();
      }, 3000),
    );
  })();

  return () => {
    closed = true;
    source?.close();
    for (const c of cleanups) c();
    for (const c of [loss, acc, batches, parts, ...weightPlots.values()]) c.destroy();
  };
}

/** @param {HTMLElement} chartEl */
function panel(chartEl) {
  return h('div', { class: 'panel' }, chartEl);
}

/**
 * Draw a character, send it as a 28×28 image (EMNIST style: bright ink on black, the ink's box
 * scaled into 20×20 and centred, as MNIST was made), see the top classes.
 * @param {string} runId
 */
function predictPanel(runId) {
  const size = 280;
  const canvas = /** @type {HTMLCanvasElement} */ (h('canvas', { width: size, height: size, id: 'draw', 'aria-label': 'Draw a character' }));
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d', { willReadFrequently: true }));
  const clear = () => {
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, size, size);
  };
  clear();
  ctx.strokeStyle = '#fff';
  ctx.lineWidth = 22;
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  let drawing = false;
  canvas.addEventListener('pointerdown', (e) => {
    drawing = true;
    canvas.setPointerCapture(e.pointerId);
    ctx.beginPath();
    ctx.moveTo(e.offsetX, e.offsetY);
    ctx.lineTo(e.offsetX + 0.1, e.offsetY + 0.1);
    ctx.stroke();
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!drawing) return;
    ctx.lineTo(e.offsetX, e.offsetY);
    ctx.stroke();
  });
  canvas.addEventListener('pointerup', () => {
    drawing = false;
  });
  const bars = h('div', { class: 'bars', id: 'predictions' }, h('p', { class: 'muted' }, 'Draw a character, then Predict.'));

  const predict = async () => {
    const pixels = toEmnist(ctx, size);
    if (!pixels) {
      replace(bars, h('p', { class: 'muted' }, 'Nothing drawn yet.'));
      return;
    }
    try {
      const out = await api(`/v1/runs/${runId}/predict`, { method: 'POST', body: { images: [pixels] } });
      const p = out.predictions[0];
      const top = p.probabilities
        .map((/** @type {number} */ prob, /** @type {number} */ i) => ({ prob, label: out.classNames[i] ?? String(i) }))
        .sort((/** @type {any} */ a, /** @type {any} */ b) => b.prob - a.prob)
        .slice(0, 5);
      replace(
        bars,
        top.map((/** @type {any} */ t) => {
          const fill = h('div', { class: 'fill' });
          fill.style.width = `${Math.max(1, t.prob * 100)}%`;
          return h(
            'div',
            { class: 'bar' },
            h('span', { class: 'label' }, t.label),
            h('div', null, fill),
            h('span', { class: 'p' }, `${(t.prob * 100).toFixed(1)}%`),
          );
        }),
      );
    } catch (err) {
      replace(bars, h('p', { class: 'error' }, err instanceof Error ? err.message : String(err)));
    }
  };

  return h(
    'div',
    null,
    h('h2', null, 'Predict'),
    h(
      'div',
      { class: 'predict' },
      canvas,
      h(
        'div',
        null,
        h(
          'div',
          { class: 'toolbar' },
          h('button', { class: 'primary', id: 'predict', onclick: predict }, 'Predict'),
          h(
            'button',
            {
              onclick: () => {
                clear();
                replace(bars);
              },
            },
            'Clear',
          ),
        ),
        bars,
      ),
    ),
  );
}

/**
 * The drawing as 784 values in [0, 1], upright, row-major; null when blank.
 * @param {CanvasRenderingContext2D} ctx @param {number} size
 */
function toEmnist(ctx, size) {
  const img = ctx.getImageData(0, 0, size, size).data;
  let x0 = size,
    y0 = size,
    x1 = -1,
    y1 = -1;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if ((img[(y * size + x) * 4] ?? 0) > 32) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  if (x1 < 0) return null;
  const w = x1 - x0 + 1;
  const hgt = y1 - y0 + 1;
  const scale = 20 / Math.max(w, hgt);
  const small = document.createElement('canvas');
  small.width = 28;
  small.height = 28;
  const s = /** @type {CanvasRenderingContext2D} */ (small.getContext('2d', { willReadFrequently: true }));
  s.fillStyle = '#000';
  s.fillRect(0, 0, 28, 28);
  s.imageSmoothingEnabled = true;
  s.imageSmoothingQuality = 'high';
  s.drawImage(ctx.canvas, x0, y0, w, hgt, (28 - w * scale) / 2, (28 - hgt * scale) / 2, w * scale, hgt * scale);
  const px = s.getImageData(0, 0, 28, 28).data;
  return Array.from({ length: 784 }, (_, i) => (px[i * 4] ?? 0) / 255);
}
