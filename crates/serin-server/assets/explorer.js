// Serin's API explorer: reads /openapi.json, lists operations by tag, and sends
// requests from a form. No framework and nothing loaded from elsewhere.
'use strict';

const $ = (tag, attrs = {}, ...children) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children) el.append(c);
  return el;
};

const tokenInput = document.getElementById('token');
tokenInput.value = sessionStorage.getItem('serin-token') || '';
tokenInput.addEventListener('change', () => sessionStorage.setItem('serin-token', tokenInput.value.trim()));

let schemas = {};

// A JSON skeleton of a schema, to start a request body from.
function skeleton(s, depth = 0) {
  if (!s || depth > 4) return null;
  if (s.$ref) return skeleton(schemas[s.$ref.split('/').pop()], depth + 1);
  if (s.example !== undefined) return s.example;
  if (s.oneOf || s.anyOf) return skeleton((s.oneOf || s.anyOf)[0], depth + 1);
  if (s.allOf) return Object.assign({}, ...s.allOf.map(x => skeleton(x, depth + 1) || {}));
  if (s.enum) return s.enum[0];
  const t = Array.isArray(s.type) ? s.type.find(x => x !== 'null') : s.type;
  switch (t) {
    case 'object': {
      const out = {};
      for (const k of s.required || []) out[k] = skeleton((s.properties || {})[k], depth + 1);
      return out;
    }
    case 'array': return [];
    case 'integer': case 'number': return 0;
    case 'boolean': return false;
    case 'string': return '';
    default: return null;
  }
}

function operationCard(path, method, op) {
  const params = op.parameters || [];
  const inputs = {};
  const fields = params.map(p => {
    const id = `${op.operationId}-${p.name}`;
    inputs[p.name] = $('input', { id, name: p.name, placeholder: p.in + (p.required ? ', required' : '') });
    return $('div', { class: 'field' }, $('label', { for: id }, `${p.name} (${p.in})`), inputs[p.name]);
  });
  const schema = op.requestBody?.content?.['application/json']?.schema;
  let body = null;
  if (schema) {
    const id = `${op.operationId}-body`;
    body = $('textarea', { id, rows: '8', spellcheck: 'false' });
    body.value = JSON.stringify(skeleton(schema), null, 2);
    fields.push($('div', { class: 'field' }, $('label', { for: id }, 'JSON body'), body));
  }
  const out = $('pre', { class: 'answer', 'aria-live': 'polite' });
  const send = async (ev) => {
    ev.preventDefault();
    let url = path.replace(/\{(\w+)\}/g, (_, n) => encodeURIComponent(inputs[n]?.value || ''));
    const query = params.filter(p => p.in === 'query' && inputs[p.name].value)
      .map(p => `${encodeURIComponent(p.name)}=${encodeURIComponent(inputs[p.name].value)}`);
    if (query.length) url += '?' + query.join('&');
    const headers = {};
    const token = tokenInput.value.trim();
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method: method.toUpperCase(), headers };
    if (body) { headers['Content-Type'] = 'application/json'; init.body = body.value; }
    out.textContent = `${init.method} ${url} …`;
    const started = performance.now();
    try {
      const r = await fetch(url, init);
      const text = await r.text();
      let shown = text;
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON */ }
      out.textContent = `${r.status} ${r.statusText} in ${Math.round(performance.now() - started)} ms\n\n${shown}`;
    } catch (e) {
      out.textContent = `request failed: ${e}`;
    }
  };
  const summary = (op.summary || '').split('\n\n')[0];
  return $('details', { class: 'op', 'data-search': `${method} ${path} ${op.operationId} ${summary}`.toLowerCase() },
    $('summary', {}, $('span', { class: `method ${method}` }, method.toUpperCase()), ' ', $('code', {}, path),
      ' ', $('span', { class: 'summary' }, summary.split('\n')[0])),
    $('p', {}, op.summary || ''),
    $('form', { onsubmit: send }, ...fields, $('button', { type: 'submit' }, 'Send')),
    out);
}

async function main() {
  const main = document.getElementById('ops');
  const doc = await (await fetch('/openapi.json')).json();
  schemas = doc.components?.schemas || {};
  const byTag = new Map((doc.tags || []).map(t => [t.name, []]));
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags || ['other'])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operationCard(path, method, op));
    }
  }
  main.replaceChildren();
  for (const [tag, cards] of byTag) {
    if (!cards.length) continue;
    main.append($('section', { class: 'tag' }, $('h2', {}, tag), ...cards));
  }
  document.getElementById('filter').addEventListener('input', (e) => {
    const q = e.target.value.trim().toLowerCase();
    for (const card of main.querySelectorAll('details.op')) {
      card.hidden = q !== '' && !card.dataset.search.includes(q);
    }
  });
}

main().catch(e => { document.getElementById('ops').textContent = `Could not load /openapi.json: ${e}`; });
