// The circuit web console's page. Live data arrives as server-sent events:
// /api/events for the members and the operation log, /api/stream for the
// output of the process on display. Everything else is fetched on demand.
'use strict';

const $ = (sel) => document.querySelector(sel);

// el makes an element with attributes (props when the key starts with '.')
// and children (strings become text).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('.')) e[k.slice(1)] = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return e;
}

// api calls the console's JSON interface and throws its error message.
async function api(path, body) {
  const opts = { credentials: 'same-origin' };
  if (body !== undefined) {
    opts.method = 'POST';
    opts.headers = { 'Content-Type': 'application/json', 'X-Circuit-Console': '1' };
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  let v;
  try { v = JSON.parse(text); } catch (e) { v = { Error: text.trim() || r.statusText }; }
  if (!r.ok) throw new Error(v.Error || (r.status + ' ' + r.statusText));
  return v;
}

let info = { Write: false };

// ---- Members

function labelText(labels) {
  return Object.entries(labels || {}).sort().map(([k, v]) => k + '=' + v).join(' ');
}

let alive = [];

function renderMembers(members) {
  const rows = members.map((m) => {
    let health = m.Health;
    if (m.Health === 'failed' && m.Until) {
      health += ' (leaves the list at ' + new Date(m.Until).toLocaleTimeString() + ')';
    }
    return el('tr', { 'data-id': m.ID, class: 'health-' + m.Health },
      el('td', {}, m.ID),
      el('td', {}, m.Addr),
      el('td', {}, labelText(m.Labels)),
      el('td', {}, m.DC || ''),
      el('td', {}, el('span', { class: 'health', 'data-health': m.Health }, health)));
  });
  $('#members tbody').replaceChildren(...rows);
  alive = members.filter((m) => m.Health === 'alive').map((m) => m.ID);
  syncServers();
}

// ---- Operation log

function renderOps(entries) {
  const rows = entries.slice().reverse().map((e) =>
    el('tr', { 'data-seq': String(e.Seq), class: e.Err ? 'error' : null },
      el('td', {}, String(e.Seq)),
      el('td', {}, new Date(e.Time).toLocaleTimeString()),
      el('td', {}, e.Op),
      el('td', {}, e.Attrs || ''),
      el('td', {}, e.Err || '')));
  $('#ops tbody').replaceChildren(...rows);
}

// ---- Namespace tree

// A node is an <li data-path> with a toggle, a name and, once open, a <ul>
// of its children.
function treeNode(path, kind) {
  const name = path.slice(path.lastIndexOf('/') + 1);
  const li = el('li', { 'data-path': path, 'data-kind': kind });
  const toggle = el('button', { type: 'button', class: 'toggle', title: 'open', 'aria-expanded': 'false' }, '▸');
  toggle.addEventListener('click', () => (li.dataset.open ? closeNode(li) : openNode(li)));
  const label = el('span', { class: 'name', tabindex: '0' },
    el('span', { class: 'kind' }, kind || '·'), kind === 'server' ? path : name);
  if (kind) label.addEventListener('click', () => showElement(path));
  li.append(toggle, label);
  return li;
}

async function openNode(li) {
  li.dataset.open = '1';
  const toggle = li.querySelector(':scope > .toggle');
  toggle.textContent = '▾';
  toggle.setAttribute('aria-expanded', 'true');
  await listInto(li);
}

function closeNode(li) {
  delete li.dataset.open;
  const toggle = li.querySelector(':scope > .toggle');
  toggle.textContent = '▸';
  toggle.setAttribute('aria-expanded', 'false');
  const ul = li.querySelector(':scope > ul');
  if (ul) ul.remove();
}

// listInto lists a node's children, keeping open the ones that were open.
async function listInto(li) {
  const path = li.dataset.path;
  let ul = li.querySelector(':scope > ul');
  if (!ul) { ul = el('ul'); li.append(ul); }
  let entries;
  try {
    entries = await api('/api/list?path=' + encodeURIComponent(path));
  } catch (err) {
    ul.replaceChildren(el('li', { class: 'error' }, err.message));
    return;
  }
  const wasOpen = new Set([...ul.querySelectorAll(':scope > li[data-open]')].map((n) => n.dataset.path));
  const children = entries.map((e) => treeNode(e.Path, e.Kind));
  if (children.length === 0) children.push(el('li', { class: 'hint' }, '(empty)'));
  ul.replaceChildren(...children);
  for (const c of children) {
    if (c.dataset && wasOpen.has(c.dataset.path)) openNode(c);
  }
}

// syncServers keeps the tree's top level equal to the live members.
function syncServers() {
  const tree = $('#tree');
  const have = new Map([...tree.children].map((li) => [li.dataset.path, li]));
  const want = alive.map((id) => '/' + id);
  for (const [path, li] of have) if (!want.includes(path)) li.remove();
  let prev = null;
  for (const path of want) {
    let li = have.get(path);
    if (!li) li = treeNode(path, 'server');
    if (li.previousElementSibling !== prev || li.parentNode !== tree) {
      if (prev) prev.after(li); else tree.prepend(li);
    }
    prev = li;
  }
}

function refreshTree() {
  for (const li of document.querySelectorAll('#tree li[data-open]')) listInto(li);
}

// ---- The element on display

let shown = null; // { path, sources: [EventSource] }

function closeShown() {
  if (!shown) return;
  for (const s of shown.sources) s.close();
  shown = null;
}

async function showElement(path) {
  closeShown();
  const me = { path, sources: [] };
  shown = me;
  for (const n of document.querySelectorAll('.name.selected')) n.classList.remove('selected');
  const node = document.querySelector('#tree li[data-path="' + CSS.escape(path) + '"] > .name');
  if (node) node.classList.add('selected');
  const detail = $('#detail');
  detail.replaceChildren(el('h3', { id: 'detail-path' }, path), el('p', { class: 'hint' }, 'loading…'));
  let v;
  try {
    v = await api('/api/peek?path=' + encodeURIComponent(path));
  } catch (err) {
    if (shown !== me) return;
    detail.replaceChildren(el('h3', { id: 'detail-path' }, path), el('p', { class: 'error', id: 'detail-error' }, err.message));
    return;
  }
  if (shown !== me) return;
  const peek = el('pre', { id: 'peek' }, JSON.stringify(v.Peek, null, 2));
  const parts = [el('h3', { id: 'detail-path' }, path), el('p', {}, 'kind ', el('strong', { id: 'detail-kind' }, v.Kind))];
  if (v.Kind === 'chan') parts.push(counters(v.Peek));
  parts.push(actions(path, v.Kind, peek), peek);
  if ((v.Kind === 'proc' || v.Kind === 'docker') && !info.Write) {
    // Reading the output takes it from its reader: a read-only console
    // never does (the server refuses it too).
    parts.push(el('p', { class: 'hint', id: 'output-hidden' },
      'This console is read-only: it does not read the output, which would take it from its reader (circuit stdout ' + path + ').'));
  } else if (v.Kind === 'proc' || v.Kind === 'docker') {
    parts.push(el('p', { class: 'hint' }, 'Reading an output makes the console its one reader: nobody else gets it then, and when you leave, the rest is discarded.'));
    for (const name of ['stdout', 'stderr']) {
      const pre = el('pre', { id: name });
      const status = el('span', { class: 'hint', id: name + '-status' }, 'not read');
      const take = el('button', { type: 'button', id: name + '-take' }, 'read ' + name + ' (takes it)');
      take.addEventListener('click', () => {
        take.remove();
        status.textContent = 'following';
        follow(me, path, name, pre, status, peek);
      });
      parts.push(el('div', { class: 'output' }, el('h3', {}, name + ' ', status, ' ', take), pre));
    }
  }
  detail.replaceChildren(...parts);
}

function counters(st) {
  return el('table', { class: 'counters', id: 'counters' },
    el('thead', {}, el('tr', {}, ...['Cap', 'NumSend', 'NumRecv', 'Closed', 'Aborted'].map((h) => el('th', {}, h)))),
    el('tbody', {}, el('tr', {}, ...['Cap', 'NumSend', 'NumRecv', 'Closed', 'Aborted'].map((k) => el('td', {}, String(st[k]))))));
}

async function repeek(path, peek) {
  try {
    const v = await api('/api/peek?path=' + encodeURIComponent(path));
    peek.textContent = JSON.stringify(v.Peek, null, 2);
  } catch (err) {
    peek.textContent = err.message;
  }
}

function actions(path, kind, peek) {
  const bar = el('div', { class: 'actions' });
  const again = el('button', { type: 'button', id: 'repeek' }, 'peek again');
  again.addEventListener('click', () => repeek(path, peek));
  bar.append(again);
  if (!info.Write) return bar;
  const msg = el('span', { class: 'error', id: 'action-error' });
  if (kind === 'proc' || kind === 'docker') {
    const sig = el('select', { id: 'signal-name' }, ...['TERM', 'INT', 'HUP', 'KILL', 'USR1', 'USR2', 'STOP', 'CONT'].map((s) => el('option', {}, s)));
    const send = el('button', { type: 'button', id: 'signal' }, 'signal');
    send.addEventListener('click', async () => {
      msg.textContent = '';
      try { await api('/api/signal', { Path: path, Signal: sig.value }); repeek(path, peek); } catch (err) { msg.textContent = err.message; }
    });
    bar.append(sig, send);
  }
  const scrub = el('button', { type: 'button', id: 'scrub' }, 'scrub');
  scrub.addEventListener('click', async () => {
    msg.textContent = '';
    if (!confirm('Scrub ' + path + '? This removes the element (a process is killed).')) return;
    try {
      await api('/api/scrub', { Path: path });
      closeShown();
      $('#detail').replaceChildren(el('p', { class: 'hint' }, path + ' scrubbed.'));
      refreshTree();
    } catch (err) { msg.textContent = err.message; }
  });
  bar.append(scrub, msg);
  return bar;
}

// follow shows one output stream as it arrives.
function follow(me, path, name, pre, status, peek) {
  const src = new EventSource('/api/stream?path=' + encodeURIComponent(path) + '&name=' + name);
  me.sources.push(src);
  const finish = (text, isError) => {
    src.close();
    status.textContent = text;
    if (isError) status.className = 'error';
    if (shown === me) repeek(path, peek);
  };
  src.addEventListener('out', (e) => {
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(document.createTextNode(JSON.parse(e.data)));
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  });
  src.addEventListener('end', () => finish('ended', false));
  src.addEventListener('error', (e) => {
    // A server's "error" event carries data; a broken connection does not,
    // and must not reconnect (the stream's data would be lost in between).
    finish(e.data ? JSON.parse(e.data) : 'connection lost', true);
  });
}

// ---- Live events

function connect() {
  const status = $('#status');
  const es = new EventSource('/api/events');
  es.addEventListener('open', () => { status.textContent = 'live'; status.className = 'status live'; });
  es.addEventListener('error', () => { status.textContent = 'reconnecting…'; status.className = 'status down'; });
  es.addEventListener('members', (e) => renderMembers(JSON.parse(e.data)));
  es.addEventListener('ops', (e) => renderOps(JSON.parse(e.data)));
}

async function start() {
  try {
    info = await api('/api/info');
  } catch (err) {
    $('#status').textContent = err.message;
    return;
  }
  $('#server').textContent = info.Server;
  $('#mode').textContent = info.Write ? 'read-write' : 'read-only';
  $('#refresh').addEventListener('click', refreshTree);
  if (info.Write) {
    const form = $('#mkproc');
    form.hidden = false;
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const path = $('#mkproc-path').value.trim();
      $('#mkproc-error').textContent = '';
      try {
        await api('/api/mkproc', { Path: path, Command: $('#mkproc-command').value, Scrub: $('#mkproc-scrub').checked });
        refreshTree();
        showElement(path);
      } catch (err) {
        $('#mkproc-error').textContent = err.message;
      }
    });
  }
  connect();
}

start();
