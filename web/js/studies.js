// @ts-check
// The Studies page (list) and a study's page: ranked comparison, overlay charts, links to its runs.
import { age, api, ApiError, badge, every, h, num, pct, replace } from './lib.js';
import { lineChart } from './charts.js';

/** @param {HTMLElement} main */
export function studiesPage(main) {
  const body = h('tbody');
  const total = h('span', { class: 'muted' });
  replace(
    main,
    h(
      'div',
      { class: 'toolbar' },
      h('h1', null, 'Studies'),
      total,
      h('span', { class: 'spacer' }),
      h('a', { class: 'button', href: '#/new?kind=study' }, 'New study'),
    ),
    h(
      'table',
      { id: 'studies' },
      h(
        'thead',
        null,
        h('tr', null, h('th', null, 'status'), h('th', null, 'name'), h('th', null, 'runs'), h('th', null, 'created'), h('th', null, 'finished')),
      ),
      body,
    ),
  );
  return every(async () => {
    const page = await api('/v1/studies?limit=100');
    total.textContent = `${page.total} stud${page.total === 1 ? 'y' : 'ies'}`;
    replace(
      body,
      page.items.length === 0 ? h('tr', null, h('td', { colspan: 5, class: 'muted' }, 'No studies yet.')) : null,
      page.items.map((/** @type {any} */ s) =>
        h(
          'tr',
          { dataset: { studyId: s.id } },
          h('td', null, badge(s.status)),
          h('td', null, h('a', { href: `#/studies/${s.id}` }, s.name ?? s.id.slice(0, 8))),
          h(
            'td',
            null,
            Object.entries(s.counts)
              .map(([k, v]) => `${v} ${k}`)
              .join(', '),
          ),
          h('td', { title: s.createdAt }, age(s.createdAt)),
          h('td', { title: s.finishedAt ?? '' }, s.finishedAt ? age(s.finishedAt) : '—'),
        ),
      ),
    );
  }, 2000);
}

/** The comparison's columns, in the order of the CSV/Markdown tables; unknown numeric fields (e.g. seed spread) follow. */
const COLUMNS = /** @type {const} */ ([
  ['rank', 'rank', (/** @type {any} */ v) => v],
  ['variant', 'variant', null],
  ['status', 'status', null],
  ['epochs', 'epochs', (/** @type {any} */ v) => v],
  ['testAccuracy', 'test accuracy', pct],
  ['testLoss', 'test loss', num],
  ['bestValAccuracy', 'best val accuracy', pct],
  ['bestValEpoch', 'best epoch', (/** @type {any} */ v) => v ?? '—'],
  ['finalPenalty', 'final penalty', num],
  ['sparsity', 'sparsity', pct],
  ['trainingSeconds', 'training s', (/** @type {number} */ v) => num(v, 1)],
  ['deltaVsBaselinePp', 'Δ vs baseline (pp)', (/** @type {number | null} */ v) => (v === null ? '—' : `${v > 0 ? '+' : ''}${v.toFixed(2)}`)],
]);

/** @param {HTMLElement} main @param {string} id */
export function studyPage(main, id) {
  let closed = false;
  /** @type {EventSource | null} */
  let source = null;
  /** @type {(() => void) | null} */
  let stopPoll = null;
  const title = h('h1', null, 'Study');
  const status = h('span');
  const actions = h('span', { class: 'toolbar' });
  const table = h('table', { id: 'comparison' });
  const spreadBox = h('div');
  const charts = h('div', { class: 'grid' });
  const links = h('div', { class: 'toolbar' });
  replace(
    main,
    h('div', { class: 'toolbar' }, title, status, h('span', { class: 'spacer' }), actions),
    spreadBox,
    h('h2', null, 'Ranked by test accuracy'),
    h('div', { class: 'scroll' }, table),
    h('h2', null, 'Validation curves, every run'),
    charts,
    h('h2', null, 'Downloads'),
    links,
  );
  /** @type {ReturnType<typeof lineChart>[]} */
  let plots = [];

  const load = async () => {
    const [study, cmp] = await Promise.all([api(`/v1/studies/${id}`), api(`/v1/studies/${id}/comparison`)]);
    if (closed) return study;
    title.textContent = study.name ?? `Study ${id.slice(0, 8)}`;
    replace(status, badge(study.status));
    replace(
      actions,
      study.status === 'queued' || study.status === 'running'
        ? h(
            'button',
            {
              class: 'danger',
              onclick: async () => {
                await api(`/v1/studies/${id}/cancel`, { method: 'POST' });
                await load();
              },
            },
            'Cancel study',
          )
        : null,
    );
    const seeded = (cmp.variants ?? []).some((/** @type {any} */ v) => v.runs > 1);
    const known = new Set(/** @type {string[]} */ (COLUMNS.map((c) => c[0])).concat(['runId', 'seed']));
    const extra = cmp.rows.length ? Object.keys(cmp.rows[0]).filter((k) => !known.has(k) && typeof cmp.rows[0][k] !== 'object') : [];
    replace(
      table,
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          COLUMNS.map(([key, label]) => h('th', { class: key === 'variant' || key === 'status' ? '' : 'num' }, label)),
          extra.map((k) => h('th', { class: 'num' }, k)),
        ),
      ),
      h(
        'tbody',
        null,
        cmp.rows.map((/** @type {any} */ r) =>
          h(
            'tr',
            { dataset: { runId: r.runId } },
            COLUMNS.map(([key, , fmt]) =>
              key === 'variant'
                ? h('td', null, h('a', { href: `#/runs/${r.runId}` }, seeded && r.seed != null ? `${r.variant} · seed ${r.seed}` : r.variant))
                : key === 'status'
                  ? h('td', null, badge(r.status))
                  : h('td', { class: 'num' }, fmt ? fmt(r[key]) : String(r[key] ?? '—')),
            ),
            extra.map((k) => h('td', { class: 'num' }, typeof r[k] === 'number' && !Number.isInteger(r[k]) ? num(r[k]) : String(r[k] ?? '—'))),
          ),
        ),
      ),
    );
    // With seeds (several runs per variant): the spread over them, ranked by mean.
    replace(
      spreadBox,
      seeded
        ? [
            h('h2', null, 'Variants over their seeds, ranked by mean test accuracy'),
            h(
              'table',
              { id: 'variants' },
              h(
                'thead',
                null,
                h(
                  'tr',
                  null,
                  ['rank', 'variant', 'runs', 'seeds', 'test accuracy mean ± sd', 'min – max', 'Δ vs baseline (pp)', 'collapsed', 'overlaps with'].map((t) =>
                    h('th', null, t),
                  ),
                ),
              ),
              h(
                'tbody',
                null,
                cmp.variants.map((/** @type {any} */ v) => {
                  const a = v.metrics?.testAccuracy;
                  return h(
                    'tr',
                    null,
                    h('td', { class: 'num' }, v.rank),
                    h('td', null, v.variant),
                    h('td', { class: 'num' }, `${v.finished}/${v.runs}`),
                    h('td', { class: 'mono' }, (v.seeds ?? []).join(', ')),
                    h('td', { class: 'num' }, a ? `${pct(a.mean)} ± ${(a.sd * 100).toFixed(2)}` : '—'),
                    h('td', { class: 'num' }, a ? `${pct(a.min)} – ${pct(a.max)}` : '—'),
                    h('td', { class: 'num' }, v.deltaVsBaselinePp === null ? '—' : `${v.deltaVsBaselinePp > 0 ? '+' : ''}${v.deltaVsBaselinePp.toFixed(2)}`),
                    h('td', { class: 'num' }, v.collapsed),
                    h('td', null, (v.overlapsWith ?? []).join(', ') || '—'),
                  );
                }),
              ),
            ),
          ]
        : null,
    );
    const self = `/v1/studies/${id}`;
    replace(
      links,
      h('a', { href: `${self}/comparison?format=csv`, target: '_blank' }, 'comparison.csv'),
      h('a', { href: `${self}/comparison?format=md`, target: '_blank' }, 'comparison.md'),
      ['val-accuracy', 'val-loss'].map((c) => h('a', { href: `${self}/charts/${c}.svg`, target: '_blank' }, `${c}.svg`)),
    );
    await drawCurves(study);
    return study;
  };

  /** @param {any} study */
  const drawCurves = async (study) => {
    const metrics = await Promise.all(study.runs.map((/** @type {any} */ r) => api(`/v1/runs/${r.id}/metrics`)));
    if (closed) return;
    const repeated = new Set(study.runs.map((/** @type {any} */ r) => r.variant)).size < study.runs.length;
    const labels = study.runs.map((/** @type {any} */ r) =>
      repeated && r.spec?.training?.seed != null ? `${r.variant} · seed ${r.spec.training.seed}` : (r.variant ?? r.id.slice(0, 8)),
    );
    const xs = [...new Set(metrics.flatMap((m) => m.epochs.map((/** @type {any} */ e) => e.epoch)))].sort((a, b) => a - b);
    const col = (/** @type {string} */ key) => metrics.map((m) => xs.map((x) => m.epochs.find((/** @type {any} */ e) => e.epoch === x)?.[key] ?? null));
    if (plots.length === 0) {
      plots = [
        lineChart({ title: 'Validation accuracy', series: labels.map((/** @type {string} */ l) => ({ label: l })), percent: true }),
        lineChart({ title: 'Validation loss', series: labels.map((/** @type {string} */ l) => ({ label: l })) }),
      ];
      replace(
        charts,
        plots.map((p) => h('div', { class: 'panel' }, p.el)),
      );
      for (const p of plots) p.mount();
    }
    plots[0]?.set(xs, col('valAccuracy'));
    plots[1]?.set(xs, col('valLoss'));
  };

  void (async () => {
    let study;
    try {
      study = await load();
    } catch (err) {
      replace(main, h('div', { class: 'notice error' }, err instanceof ApiError && err.status === 404 ? `Study ${id} not found.` : String(err)));
      return;
    }
    if (closed || study.status === 'completed' || study.status === 'cancelled') return;
    // Live: redraw on every epoch and terminal event of any of its runs.
    source = new EventSource(`/v1/studies/${id}/events`);
    let pending = false;
    const again = () => {
      if (pending) return;
      pending = true;
      setTimeout(async () => {
        pending = false;
        if (!closed) await load().catch(() => {});
      }, 500);
    };
    for (const t of ['epoch', 'completed', 'failed', 'cancelled', 'started']) source.addEventListener(t, again);
    source.addEventListener('study-completed', () => {
      source?.close();
      source = null;
      again();
    });
    stopPoll = null;
  })();

  return () => {
    closed = true;
    source?.close();
    stopPoll?.();
    for (const p of plots) p.destroy();
  };
}
