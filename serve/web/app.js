/*
 * upaas dashboard: plain JavaScript, no framework, no build step.
 *
 * The API token lives in sessionStorage (gone with the tab) and goes out in
 * an Authorization header of fetch(): no cookie, so no cross-site request
 * can act with it. Live logs are read with fetch() as a stream of
 * Server-Sent Events, since EventSource cannot send that header.
 */
'use strict';

const TOKEN_KEY = 'upaas.token';
const STEPS = ['system', 'os packages', 'interpreter', 'checkout', 'files', 'before', 'main',
  'after', 'finalize'];
const STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

let me = null;            // { name, scope } of the token
let view = null;          // the current page's cleanup
const main = document.getElementById('main');

/* ------------------------------------------------------------- helpers */

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

const SVGNS = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

const ICONS = {
  ok: 'M3.5 8.5l3 3 6-7',
  bad: 'M4.5 4.5l7 7M11.5 4.5l-7 7',
  skip: 'M4 8h8',
  queued: 'M8 4.5V8l2.5 1.5',
  cancelled: 'M4 12L12 4',
};
function icon(name) {
  const svg = s('svg', { viewBox: '0 0 16 16', 'aria-hidden': 'true' });
  if (name === 'running') {
    svg.append(s('circle', { cx: 8, cy: 8, r: 5.5, fill: 'none', stroke: 'currentColor',
      'stroke-width': 2, 'stroke-dasharray': '22 12', 'stroke-linecap': 'round' }));
  } else if (name === 'queued' || name === 'cancelled') {
    svg.append(s('circle', { cx: 8, cy: 8, r: 6, fill: 'none', stroke: 'currentColor',
      'stroke-width': 1.8 }));
    svg.append(s('path', { d: ICONS[name], fill: 'none', stroke: 'currentColor',
      'stroke-width': 1.8, 'stroke-linecap': 'round' }));
  } else {
    svg.append(s('path', { d: ICONS[name] || '', fill: 'none', stroke: 'currentColor',
      'stroke-width': 2.2, 'stroke-linecap': 'round', 'stroke-linejoin': 'round' }));
  }
  return svg;
}

function statePill(state) {
  const ic = { succeeded: 'ok', failed: 'bad', running: 'running', queued: 'queued',
    cancelled: 'cancelled' }[state] || 'queued';
  return h('span', { class: 'state ' + state, 'data-state': state }, icon(ic), state);
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return '–';
  const sec = ms / 1000;
  if (sec < 60) return sec.toFixed(sec < 10 ? 1 : 0) + ' s';
  const m = Math.floor(sec / 60), r = Math.round(sec % 60);
  if (m < 60) return m + ' min ' + String(r).padStart(2, '0') + ' s';
  return Math.floor(m / 60) + ' h ' + String(m % 60).padStart(2, '0') + ' min';
}

function ago(ms) {
  if (!ms) return '–';
  const d = (Date.now() - ms) / 1000;
  if (d < 5) return 'just now';
  if (d < 60) return Math.round(d) + ' s ago';
  if (d < 3600) return Math.round(d / 60) + ' min ago';
  if (d < 86400) return Math.round(d / 3600) + ' h ago';
  return Math.round(d / 86400) + ' d ago';
}

function when(ms) {
  if (!ms) return '–';
  return new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

function buildTook(b) {
  if (!b.started_at_ms) return null;
  return (b.finished_at_ms || Date.now()) - b.started_at_ms;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}

function short(sha) { return sha ? sha.slice(0, 10) : '–'; }

function toast(msg, bad) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.className = 'toast' + (bad ? ' bad' : '');
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

function can(scope) {
  const order = { read: 0, build: 1, admin: 2 };
  return me && order[me.scope] >= order[scope];
}

/* ----------------------------------------------------------------- API */

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function authHeaders(extra) {
  const hd = Object.assign({}, extra || {});
  const tok = sessionStorage.getItem(TOKEN_KEY);
  if (tok) hd.Authorization = 'Bearer ' + tok;
  return hd;
}

async function api(path, opts) {
  opts = opts || {};
  const init = { method: opts.method || 'GET', headers: authHeaders({ Accept: 'application/json' }),
    signal: opts.signal, cache: 'no-store' };
  if (opts.body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(opts.body);
  }
  const res = await fetch('/api/v1' + path, init);
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) {
    const err = new ApiError(res.status, (data && data.error) || res.statusText);
    if (res.status === 401 && !opts.noLogin) {
      sessionStorage.removeItem(TOKEN_KEY);
      me = null;
      go('#/login');
    }
    throw err;
  }
  return data;
}

/*
 * Follows a build's log: GET .../log?follow=1 read as Server-Sent Events.
 * cb.lines(array), cb.state(build), cb.end(build). Reconnects from the
 * last event id when the connection breaks. Returns a stop function.
 */
function followLog(id, cb) {
  const ctl = new AbortController();
  let offset = 0, ended = false;
  async function run() {
    while (!ended && !ctl.signal.aborted) {
      try {
        const res = await fetch('/api/v1/builds/' + encodeURIComponent(id) + '/log?follow=1&offset=' + offset,
          { headers: authHeaders({ Accept: 'text/event-stream' }), signal: ctl.signal, cache: 'no-store' });
        if (!res.ok || !res.body) throw new ApiError(res.status, res.statusText);
        const reader = res.body.getReader();
        const dec = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let cut;
          while ((cut = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            let ev = 'message', data = [], eid = null;
            for (const line of block.split('\n')) {
              if (line.startsWith(':')) continue;
              const c = line.indexOf(':');
              const f = c < 0 ? line : line.slice(0, c);
              let v = c < 0 ? '' : line.slice(c + 1);
              if (v.startsWith(' ')) v = v.slice(1);
              if (f === 'event') ev = v;
              else if (f === 'data') data.push(v);
              else if (f === 'id') eid = v;
            }
            if (eid !== null) offset = Number(eid) || offset;
            if (ev === 'message' && data.length) cb.lines(data);
            else if (ev === 'state') cb.state(JSON.parse(data.join('\n')));
            else if (ev === 'end') { ended = true; cb.end(JSON.parse(data.join('\n'))); }
          }
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
        if (e instanceof ApiError && e.status === 401) { go('#/login'); return; }
      }
      if (!ended && !ctl.signal.aborted) await new Promise((r) => setTimeout(r, 1500));
    }
  }
  run();
  return () => { ended = true; ctl.abort(); };
}

/* ---------------------------------------------------------------- pages */

function setPage(nav, ...kids) {
  document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('active', a.dataset.nav === nav));
  main.replaceChildren(...kids);
}

function loading() { return h('div', { class: 'card empty' }, 'Loading…'); }

function failed(e) {
  return h('div', { class: 'card empty' }, h('div', { class: 'error-box' }, String(e.message || e)));
}

/* Runs refresh now and every ms until the page changes. What is not
 * there (404) replaces the page with its error and stops. */
function every(ms, refresh) {
  let timer = null, stopped = false;
  const tick = async () => {
    try {
      await refresh();
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        stopped = true;
        main.replaceChildren(failed(e));
      } else if (!(e instanceof ApiError)) {
        console.warn(e);
      }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

/* ------------------------------------------------------------- login */

function pageLogin(params) {
  document.getElementById('who').replaceChildren();
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'upaas_…', required: true });
  const err = h('div', { class: 'error-box', hidden: true });
  const form = h('form', { class: 'card', id: 'login-form' },
    h('h1', {}, 'Sign in to upaas'),
    h('p', {}, 'Paste an API token. An admin makes one on the builder with ',
      h('code', {}, 'upaas token add NAME --scope read|build|admin'), '.'),
    err,
    h('div', { class: 'field' }, h('label', { for: 'token' }, 'API token'), input),
    h('button', { class: 'btn primary', type: 'submit', id: 'login-button' }, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    try {
      me = await api('/whoami', { noLogin: true });
      if (!me.scope) throw new ApiError(401, 'no scope');
      showWho();
      go(params.next || '#/apps');
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      err.hidden = false;
      err.textContent = e.status === 401 ? 'That token is not valid.' : String(e.message);
    }
  });
  setPage('', h('div', { class: 'login' }, form));
  input.focus();
}

function showWho() {
  const who = document.getElementById('who');
  if (!me) { who.replaceChildren(); return; }
  const out = h('button', { id: 'logout', onclick: () => {
    sessionStorage.removeItem(TOKEN_KEY);
    me = null;
    go('#/login');
  } }, 'Sign out');
  who.replaceChildren(h('span', {}, me.name || 'anonymous'), h('span', { class: 'scope' }, me.scope),
    sessionStorage.getItem(TOKEN_KEY) ? out : null);
}

/* ------------------------------------------------------------- apps */

function pageApps() {
  const body = h('div', {}, loading());
  setPage('apps', h('div', { class: 'page-head' },
    h('div', { class: 'grow' }, h('h1', {}, 'Apps'),
      h('div', { class: 'sub' }, 'Registered apps, their current package and their last build'))),
  body);
  return every(3000, async () => {
    const [apps, builds] = await Promise.all([api('/apps'), api('/builds?limit=200')]);
    const day = Date.now() - 86400000;
    const count = (f) => builds.filter(f).length;
    const stats = h('div', { class: 'stats' },
      stat('apps', apps.length, ''),
      stat('running', count((b) => b.state === 'running'), 'running'),
      stat('queued', count((b) => b.state === 'queued'), ''),
      stat('failed in 24 h', count((b) => b.state === 'failed' && b.finished_at_ms > day), 'failed'));
    if (!apps.length) {
      body.replaceChildren(stats, h('div', { class: 'card empty' }, 'No app is registered yet. ',
        h('code', {}, 'upaas app add NAME --repo URL'), ' registers one.'));
      return;
    }
    const rows = apps.map((a) => {
      const b = a.last_build;
      return h('tr', { class: 'link', 'data-app': a.name, onclick: () => go('#/app/' + a.name) },
        h('td', {}, h('div', { class: 'cell-main' }, h('a', { href: '#/app/' + a.name }, a.name)),
          h('div', { class: 'cell-sub mono' }, a.repo)),
        h('td', {}, a.branch ? h('span', { class: 'tag ref' }, a.branch) : h('span', { class: 'faint' }, 'default')),
        h('td', {}, a.current ? h('span', { class: 'mono' }, a.current) : h('span', { class: 'faint' }, 'none yet')),
        h('td', {}, b ? h('div', {}, statePill(b.state), ' ',
          h('a', { class: 'mono', href: '#/build/' + b.id, onclick: (e) => e.stopPropagation() }, b.id))
          : h('span', { class: 'faint' }, 'never built'),
        b ? h('div', { class: 'cell-sub' }, ago(b.finished_at_ms || b.started_at_ms || b.queued_at_ms)) : null),
        h('td', { class: 'num' }, b ? fmtDuration(buildTook(b)) : '–'));
    });
    body.replaceChildren(stats, h('div', { class: 'card flush' },
      h('table', { class: 'list', id: 'apps-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'App'), h('th', {}, 'Branch'), h('th', {}, 'Current package'),
          h('th', {}, 'Last build'), h('th', { class: 'num' }, 'Took'))),
        h('tbody', {}, rows))));
  });
}

function stat(label, n, cls) {
  return h('div', { class: 'stat ' + cls }, h('div', { class: 'n' }, n), h('div', { class: 'l' }, label));
}

/* -------------------------------------------------------------- app */

async function enqueue(app, fresh) {
  try {
    const b = await api('/builds', { method: 'POST', body: { app, fresh } });
    toast(b.coalesced ? 'Joined the queued build ' + b.id : 'Queued build ' + b.id);
    go('#/build/' + b.id);
  } catch (e) {
    toast(e.message, true);
  }
}

function pageApp(name) {
  const head = h('div', {}, loading());
  const chart = h('div', { class: 'card chart' }, h('h2', {}, 'Build durations'), loading());
  const builds = h('div', { class: 'card flush' }, h('h2', {}, 'Recent builds'));
  const pkgs = h('div', { class: 'card flush' }, h('h2', {}, 'Packages'));
  setPage('apps', head, chart, builds, pkgs);
  let pkgsLoaded = false;
  return every(3000, async () => {
    const [app, list] = await Promise.all([api('/apps/' + encodeURIComponent(name)),
      api('/builds?limit=40&app=' + encodeURIComponent(name))]);
    renderAppHead(head, app);
    renderChart(chart, list);
    builds.replaceChildren(h('h2', {}, 'Recent builds'), buildTable(list.slice(0, 12), false));
    if (!pkgsLoaded || list.some((b) => b.state === 'running')) {
      const p = await api('/apps/' + encodeURIComponent(name) + '/packages');
      pkgs.replaceChildren(h('h2', {}, 'Packages'), packageTable(p));
      pkgsLoaded = true;
    }
  });
}

function renderAppHead(el, a) {
  const acts = can('build') ? h('div', { class: 'actions' },
    h('button', { class: 'btn primary', id: 'build', onclick: () => enqueue(a.name, false) }, 'Build'),
    h('button', { class: 'btn', id: 'build-fresh', onclick: () => enqueue(a.name, true),
      title: 'from the base image, not the current package' }, 'Build fresh')) : null;
  el.replaceChildren(h('div', { class: 'page-head' },
    h('div', { class: 'grow' },
      h('div', { class: 'crumbs' }, h('a', { href: '#/apps' }, 'Apps'), ' / '),
      h('h1', {}, a.name),
      h('div', { class: 'sub' },
        h('span', { class: 'mono' }, a.repo),
        h('span', {}, 'branch ', h('span', { class: 'tag ref' }, a.branch || 'default')),
        h('span', {}, 'current ', a.current ? h('span', { class: 'mono' }, a.current) : h('span', { class: 'faint' }, 'none')),
        h('span', { class: 'faint' }, 'registered ' + (a.created ? new Date(a.created).toLocaleDateString() : '')))),
    acts));
}

function renderChart(el, builds) {
  const done = builds.filter((b) => b.started_at_ms && b.finished_at_ms && b.state !== 'queued')
    .sort((x, y) => x.started_at_ms - y.started_at_ms).slice(-40);
  const title = h('h2', {}, 'Build durations', h('span', { class: 'faint' }, done.length ? '  ·  last ' + done.length : ''));
  if (!done.length) {
    el.replaceChildren(title, h('div', { class: 'empty' }, 'No finished build yet.'));
    return;
  }
  const W = 1000, H = 220, L = 52, R = 10, T = 12, B = 30;
  const max = Math.max(...done.map((b) => b.finished_at_ms - b.started_at_ms), 1000);
  const step = niceStep(max / 4);
  const top = Math.ceil(max / step) * step;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img',
    'aria-label': 'build durations', id: 'duration-chart' });
  for (let v = 0; v <= top + 1; v += step) {
    const y = T + (H - T - B) * (1 - v / top);
    svg.append(s('line', { class: v ? 'grid' : 'axis', x1: L, x2: W - R, y1: y, y2: y }));
    svg.append(s('text', { x: L - 8, y: y + 4, 'text-anchor': 'end' }, fmtDuration(v)));
  }
  const slot = (W - L - R) / Math.max(done.length, 10);
  const bw = Math.max(Math.min(slot * 0.7, 36), 3);
  done.forEach((b, i) => {
    const d = b.finished_at_ms - b.started_at_ms;
    const bh = Math.max((H - T - B) * d / top, 2);
    const x = L + slot * i + (slot - bw) / 2;
    const bar = s('rect', { class: 'bar ' + b.state, x, y: H - B - bh, width: bw, height: bh, rx: 2,
      onclick: () => go('#/build/' + b.id) });
    bar.append(s('title', {}, `${b.id}\n${b.state}, ${fmtDuration(d)}\n${when(b.started_at_ms)}`));
    svg.append(bar);
  });
  const first = done[0], last = done[done.length - 1];
  svg.append(s('text', { x: L, y: H - 10 }, new Date(first.started_at_ms).toLocaleDateString()));
  svg.append(s('text', { x: W - R, y: H - 10, 'text-anchor': 'end' }, new Date(last.started_at_ms).toLocaleString()));
  el.replaceChildren(title, svg, h('div', { class: 'legend' },
    h('span', { class: 'succeeded' }, 'succeeded'), h('span', { class: 'failed' }, 'failed'),
    h('span', { class: 'cancelled' }, 'cancelled')));
}

function niceStep(x) {
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

function buildTable(list, withApp) {
  if (!list.length) return h('div', { class: 'empty' }, 'No builds.');
  return h('table', { class: 'list builds' },
    h('thead', {}, h('tr', {}, h('th', {}, 'State'), h('th', {}, 'Build'), withApp ? h('th', {}, 'App') : null,
      h('th', {}, 'Ref'), h('th', {}, 'Worker'), h('th', {}, 'Queued'), h('th', { class: 'num' }, 'Took'))),
    h('tbody', {}, list.map((b) => h('tr', { class: 'link', 'data-build': b.id, onclick: () => go('#/build/' + b.id) },
      h('td', {}, statePill(b.state)),
      h('td', {}, h('a', { class: 'mono', href: '#/build/' + b.id }, b.id),
        b.fresh ? h('span', {}, ' ', h('span', { class: 'tag fresh' }, 'fresh')) : null,
        b.error && (b.state === 'failed' || (b.state === 'cancelled' && b.error !== 'cancelled'))
          ? h('div', { class: 'cell-sub err', title: b.error }, b.error.split('\n')[0]) : null),
      withApp ? h('td', {}, h('a', { href: '#/app/' + b.app, onclick: (e) => e.stopPropagation() }, b.app)) : null,
      h('td', {}, b.ref ? h('span', { class: 'tag ref', title: b.ref }, short(b.ref)) : h('span', { class: 'faint' }, 'app branch')),
      h('td', { class: 'mono faint nowrap' }, b.worker || '–'),
      h('td', { class: 'nowrap', title: when(b.queued_at_ms) }, ago(b.queued_at_ms)),
      h('td', { class: 'num nowrap' }, fmtDuration(buildTook(b)))))));
}

/* refs/heads/main -> main; a commit id -> its first 10 digits */
function refName(ref) {
  if (!ref) return '';
  if (/^[0-9a-f]{40,64}$/.test(ref)) return short(ref);
  return ref.replace(/^refs\/(heads|tags)\//, '');
}

function stepClass(name) { return 'st-' + name.replace(/[^a-z]+/g, '-'); }

function packageTable(list) {
  if (!list.length) return h('div', { class: 'empty' }, 'No package yet.');
  const rows = list.slice().reverse().map((p) => {
    if (p.error) return h('tr', {}, h('td', { class: 'mono' }, p.id), h('td', { colspan: 5 }, 'unreadable: ' + p.error));
    const steps = (p.steps || []).filter((st) => st.seconds > 0);
    const total = steps.reduce((a, st) => a + st.seconds, 0) || 1;
    const bar = h('div', { class: 'stepbar' }, steps.map((st) => {
      const seg = h('span', { class: stepClass(st.name), title: `${st.name}: ${st.seconds.toFixed(2)} s (${st.status})` });
      seg.style.width = (100 * st.seconds / total).toFixed(2) + '%';
      return seg;
    }));
    return h('tr', { 'data-package': p.id },
      h('td', {}, h('span', { class: 'mono' }, p.id), p.current ? h('span', {}, ' ', h('span', { class: 'tag current' }, 'current')) : null,
        h('div', { class: 'cell-sub' }, p.created || '')),
      h('td', {}, h('span', { class: 'tag' + (p.fresh ? ' fresh' : '') }, p.fresh ? 'fresh' : 'incremental')),
      h('td', { class: 'mono', title: (p.repository && p.repository.commit) || '' },
        short(p.repository && p.repository.commit), h('div', { class: 'cell-sub' }, refName(p.repository && p.repository.ref))),
      h('td', { class: 'num nowrap' }, fmtBytes(p.total_size != null ? p.total_size : (p.blob || {}).size)),
      h('td', {}, bar, h('div', { class: 'steplist' }, steps.length ? steps.filter((st) => st.seconds >= 0.05).map((st) =>
        h('span', {}, h('span', { class: 'dot ' + stepClass(st.name) }), st.name + ' ' + st.seconds.toFixed(1) + ' s'))
        : 'no step ran')),
      h('td', { class: 'num' }, fmtDuration(1000 * (p.steps || []).reduce((a, st) => a + st.seconds, 0))));
  });
  return h('table', { class: 'list', id: 'packages-table' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Package'), h('th', {}, 'Kind'), h('th', {}, 'Commit'),
      h('th', { class: 'num' }, 'Size'), h('th', {}, 'Steps'), h('th', { class: 'num' }, 'Step time'))),
    h('tbody', {}, rows));
}

/* ------------------------------------------------------------ queue */

function pageQueue(params) {
  const filter = params.state || 'all';
  const body = h('div', { class: 'card flush' }, loading());
  setPage('queue', h('div', { class: 'page-head' },
    h('div', { class: 'grow' }, h('h1', {}, 'Queue'),
      h('div', { class: 'sub' }, 'Every build, newest first; states update live'))), body);
  return every(2000, async () => {
    const all = await api('/builds?limit=200');
    const tabs = [['all', 'All'], ['running', 'Running'], ['queued', 'Queued'], ['failed', 'Failed'],
      ['succeeded', 'Succeeded']];
    const shown = filter === 'all' ? all : all.filter((b) => b.state === filter);
    body.replaceChildren(h('div', { class: 'tabs' }, tabs.map(([k, label]) =>
      h('a', { href: '#/queue' + (k === 'all' ? '' : '?state=' + k), class: k === filter ? 'active' : null },
        label, h('span', { class: 'count' }, k === 'all' ? all.length : all.filter((b) => b.state === k).length)))),
    buildTable(shown, true));
  });
}

/* ------------------------------------------------------------ build */

/* The steps and stages of a build, from its log lines. */
function parseProgress(lines, st) {
  const nodes = [{ name: 'fetch', kind: 'stage' }, { name: 'base', kind: 'stage' }]
    .concat(STEPS.map((n) => ({ name: n, kind: 'step' })))
    .concat([{ name: 'pack', kind: 'stage' }, { name: 'publish', kind: 'stage' }]);
  const by = Object.fromEntries(nodes.map((n) => [n.name, n]));
  for (const l of lines) {
    let m;
    if ((m = /stage (\w+): ([\d.]+) s$/.exec(l)) && by[m[1]]) {
      Object.assign(by[m[1]], { status: 'done', secs: +m[2] });
    } else if ((m = /==> step (.+)$/.exec(l)) && by[m[1]]) {
      by[m[1]].status = 'now';
    } else if ((m = /<== step (.+?) (ok|skipped) in ([\d.]+) s$/.exec(l)) && by[m[1]]) {
      Object.assign(by[m[1]], { status: m[2] === 'ok' ? 'done' : 'skipped', secs: +m[3] });
    } else if ((m = /<== step (.+?) failed after ([\d.]+) s/.exec(l)) && by[m[1]]) {
      Object.assign(by[m[1]], { status: 'bad', secs: +m[2] });
    }
  }
  const lastDone = nodes.map((n) => !!n.status && n.status !== 'now').lastIndexOf(true);
  const next = nodes.findIndex((n, i) => i > lastDone && !n.status);
  if (st === 'running' && !nodes.some((n) => n.status === 'now') && next >= 0) nodes[next].status = 'now';
  if (st === 'failed' && !nodes.some((n) => n.status === 'bad')) {
    const cur = nodes.find((n) => n.status === 'now') || nodes[next];
    if (cur) cur.status = 'bad';
  }
  if (st !== 'running') nodes.forEach((n) => { if (n.status === 'now') n.status = st === 'failed' ? 'bad' : undefined; });
  return nodes;
}

function renderPipeline(el, nodes) {
  el.replaceChildren(...nodes.map((n) => {
    const cls = { done: 'done', skipped: 'skipped', now: 'now', bad: 'bad' }[n.status] || '';
    const ic = { done: 'ok', skipped: 'skip', now: 'running', bad: 'bad' }[n.status];
    return h('div', { class: 'stage ' + cls, 'data-step': n.name, title: n.kind },
      h('div', { class: 'node' }, ic ? icon(ic) : null),
      h('div', { class: 'sname' }, n.name),
      h('div', { class: 'stime' }, n.secs !== undefined ? n.secs.toFixed(n.secs < 10 ? 2 : 1) + ' s' : n.status === 'now' ? '…' : '\u00a0'));
  }));
}

function logLine(text) {
  const m = /^(\d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d)\.\d+Z) (.*)$/.exec(text);
  const ln = h('div', { class: 'ln' });
  let body = text;
  if (m) {
    ln.append(h('span', { class: 'ts', title: m[1] }, m[2]));
    body = m[3];
  }
  let cls = null;
  if (body.startsWith('==> step')) cls = 'step';
  else if (/^<== step .* failed/.test(body) || /^build failed/.test(body)) cls = 'steperr';
  else if (body.startsWith('<== step')) cls = 'stepok';
  else if (body.startsWith('upaas worker:')) cls = 'worker';
  ln.append(cls ? h('span', { class: cls }, body) : body);
  return ln;
}

function pageBuild(id) {
  const head = h('div', {}, loading());
  const pipe = h('div', { class: 'pipeline', id: 'pipeline' });
  const live = h('span', { class: 'live', hidden: true }, 'live');
  const follow = h('input', { type: 'checkbox', checked: true, id: 'follow' });
  const log = h('div', { class: 'log', id: 'log' }, h('div', { class: 'log-empty' }, 'Waiting for the log…'));
  const lines = [];
  let state = null, b = null, ticker = null;
  setPage('queue', head, h('div', { class: 'card' }, h('h2', {}, 'Pipeline'), pipe),
    h('div', { class: 'card flush' },
      h('div', { class: 'log-head' }, h('span', {}, 'Build log'), live, h('span', { class: 'grow' }),
        h('label', {}, follow, 'follow'),
        h('a', { href: '#', id: 'raw', onclick: (e) => { e.preventDefault(); openRaw(id); } }, 'raw')),
      log));

  const render = () => {
    if (!b) return;
    renderBuildHead(head, b);
    renderPipeline(pipe, parseProgress(lines, b.state));
    live.hidden = b.state !== 'running' && b.state !== 'queued';
  };
  const stop = followLog(id, {
    lines(batch) {
      if (!lines.length) log.replaceChildren();
      const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
      const frag = document.createDocumentFragment();
      for (const l of batch) { lines.push(l); frag.append(logLine(l)); }
      log.append(frag);
      if (follow.checked && (atBottom || lines.length === batch.length)) log.scrollTop = log.scrollHeight;
      render();
    },
    state(nb) { b = nb; state = nb.state; render(); },
    end(nb) {
      b = nb; state = nb.state; render();
      if (!lines.length) log.replaceChildren(h('div', { class: 'log-empty' }, 'This build wrote no log on this server.'));
    },
  });
  // the duration of a running build ticks; the first state comes from here too
  api('/builds/' + encodeURIComponent(id)).then((nb) => { if (!b) { b = nb; render(); } })
    .catch((e) => { head.replaceChildren(failed(e)); });
  ticker = setInterval(() => { if (b && state === 'running') renderBuildHead(head, b); }, 1000);
  return () => { stop(); clearInterval(ticker); };
}

function openRaw(id) {
  fetch('/api/v1/builds/' + encodeURIComponent(id) + '/log', { headers: authHeaders() })
    .then((r) => r.blob()).then((blob) => window.open(URL.createObjectURL(blob), '_blank'));
}

function renderBuildHead(el, b) {
  const acts = h('div', { class: 'actions' });
  if (can('build') && (b.state === 'queued' || b.state === 'running')) {
    acts.append(h('button', { class: 'btn danger', id: 'cancel', disabled: b.cancel_requested || null,
      onclick: async () => {
        try { await api('/builds/' + b.id + '/cancel', { method: 'POST' }); toast('Cancel requested'); } catch (e) { toast(e.message, true); }
      } }, b.cancel_requested ? 'Cancelling…' : 'Cancel'));
  }
  if (can('build') && b.state !== 'queued' && b.state !== 'running') {
    acts.append(h('button', { class: 'btn', id: 'retry', onclick: async () => {
      try {
        const nb = await api('/builds/' + b.id + '/retry', { method: 'POST' });
        toast('Queued build ' + nb.id);
        go('#/build/' + nb.id);
      } catch (e) { toast(e.message, true); }
    } }, 'Retry'));
  }
  const took = buildTook(b);
  el.replaceChildren(h('div', { class: 'page-head' },
    h('div', { class: 'grow' },
      h('div', { class: 'crumbs' }, h('a', { href: '#/apps' }, 'Apps'), ' / ',
        h('a', { href: '#/app/' + b.app }, b.app), ' / build'),
      h('h1', {}, statePill(b.state), ' ', h('span', { class: 'mono', id: 'build-id' }, b.id)),
      h('div', { class: 'sub' },
        h('span', {}, 'ref ', b.ref ? h('span', { class: 'tag ref', title: b.ref }, short(b.ref)) : h('span', { class: 'faint' }, "the app's branch")),
        b.fresh ? h('span', { class: 'tag fresh' }, 'fresh') : null,
        h('span', {}, 'queued ' + ago(b.queued_at_ms)),
        b.started_at_ms ? h('span', {}, 'waited ' + fmtDuration(b.started_at_ms - b.queued_at_ms)) : null,
        h('span', { id: 'took' }, b.state === 'queued' ? 'waiting for a worker'
          : (b.state === 'running' ? 'running for ' : 'took ') + fmtDuration(took)),
        b.worker ? h('span', { class: 'mono' }, b.worker) : null,
        b.attempts > 1 ? h('span', {}, 'attempt ' + b.attempts) : null)),
    acts));
  if (b.package_id || b.error) {
    el.append(h('div', { class: 'card' }, h('dl', { class: 'kv' },
      b.package_id ? [h('dt', {}, 'package'), h('dd', { class: 'mono' },
        h('a', { href: '#/app/' + encodeURIComponent(b.app) }, b.package_id))] : null,
      b.error ? [h('dt', {}, b.state === 'failed' ? 'error' : 'note'), h('dd', { class: 'mono' }, b.error)] : null)));
  }
}

/* ------------------------------------------------------------ hosts */

function fleetPill(state) {
  const ic = { current: 'ok', failed: 'bad', behind: 'running', silent: 'queued',
    undeployed: 'cancelled' }[state] || 'queued';
  return h('span', { class: 'state fleet-' + state, 'data-state': state }, icon(ic), state);
}

function pageHosts() {
  const body = h('div', { class: 'card flush' }, loading());
  const sub = h('div', { class: 'sub' }, 'What each deploy host runs, as the hosts report it');
  setPage('hosts', h('div', { class: 'page-head' }, h('div', { class: 'grow' }, h('h1', {}, 'Deploy hosts'),
    sub)), body);
  return every(10000, async () => {
    const v = await api('/hosts');
    if (!v.apps || !v.apps.length) {
      body.replaceChildren(h('div', { class: 'empty' }, 'No deploy host has reported yet.'));
      return;
    }
    sub.textContent = v.hosts.length + (v.hosts.length === 1 ? ' host, ' : ' hosts, ') +
      v.apps.length + (v.apps.length === 1 ? ' app: ' : ' apps: ') +
      (v.drift ? v.drift + ' drifting' : 'every host runs every app\'s current');
    const rows = [];
    for (const a of v.apps) {
      a.hosts.forEach((x, i) => {
        rows.push(h('tr', { 'data-app': a.app, 'data-host': x.host },
          h('td', {}, i ? '' : h('a', { href: '#/app/' + encodeURIComponent(a.app) }, a.app)),
          h('td', { class: 'mono' }, i ? '' : (a.current || '–')),
          h('td', { class: 'mono' }, x.host),
          h('td', { class: 'mono' }, x.runs || '–'),
          h('td', { title: x.error || '' }, fleetPill(x.state)),
          h('td', {}, x.seen ? ago(Date.parse(x.seen)) : '–')));
      });
    }
    body.replaceChildren(h('table', { class: 'list', id: 'hosts-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'App'), h('th', {}, 'Current'), h('th', {}, 'Host'),
        h('th', {}, 'Runs'), h('th', {}, 'State'), h('th', {}, 'Seen'))),
      h('tbody', {}, rows)));
  });
}

/* ----------------------------------------------------------- router */

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/apps';
  const [path, qs] = raw.split('?');
  const params = Object.fromEntries(new URLSearchParams(qs || ''));
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), params };
}

async function route() {
  if (view) { view(); view = null; }
  const { parts, params } = parseHash();
  if (parts[0] === 'login') { pageLogin(params); return; }
  if (!me) {
    try {
      const w = await api('/whoami', { noLogin: true });
      if (w.scope) me = w;   // a token, or anonymous read
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
    }
    if (!me) {
      go('#/login?next=' + encodeURIComponent(location.hash || '#/apps'));
      return;
    }
  }
  showWho();
  try {
    switch (parts[0]) {
      case 'app': view = pageApp(parts[1]); break;
      case 'build': view = pageBuild(parts[1]); break;
      case 'queue': view = pageQueue(params); break;
      case 'hosts': view = pageHosts(); break;
      default: view = pageApps();
    }
  } catch (e) {
    main.replaceChildren(failed(e));
  }
}

window.addEventListener('hashchange', route);
route();
