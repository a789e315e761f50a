// Written by Serin (nginx engine, split=njs). Serin rewrites this file when
// it starts; don't edit it.
//
// Each request's upstream server is chosen here from DIR/BACKEND.json, a
// state file Serin replaces (write, then rename) on every change of weight
// or rules. A change is in effect from the next request on: nginx is never
// reloaded, so no kept-alive client connection is ever closed for it.
//
// nginx.conf (http block):
//   js_import serin from DIR/serin.js;
//   js_set $serin_route serin.route;
//   js_var $serin_dir DIR;
// a location:  set $serin_backend BACKEND; proxy_pass http://$serin_route;
// the probe:   location /serin/ { js_content serin.probe; }

var fs = require('fs');

// The state files' format this module reads; the probe says it.
var FORMAT = 1;

function load(r, backend) {
    if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(backend)) {
        return null;
    }
    try {
        var s = JSON.parse(fs.readFileSync(r.variables.serin_dir + '/' + backend + '.json'));
        return s.format === FORMAT ? s : null;
    } catch (e) {
        return null;
    }
}

// A weighted choice among [address, weight] pairs; null when all weigh 0.
function pick(servers) {
    var total = 0;
    var i;
    for (i = 0; i < servers.length; i++) {
        total += servers[i][1];
    }
    if (total <= 0) {
        return null;
    }
    var x = Math.random() * total;
    for (i = 0; i < servers.length; i++) {
        x -= servers[i][1];
        if (x < 0) {
            return servers[i][0];
        }
    }
    return servers[servers.length - 1][0];
}

// The value a rule reads, as nginx's own variables give it ('' when absent).
function source(r, rule) {
    var v = rule.header !== undefined
        ? r.variables['http_' + rule.header.toLowerCase().replace(/-/g, '_')]
        : r.variables['cookie_' + rule.cookie];
    return v === undefined || v === null ? '' : String(v);
}

// The upstream server for this request: the lane of the first rule that
// matches, else a weighted choice. Without a state file, the backend's name
// itself: the operator's own upstream of that name.
function route(r) {
    var backend = r.variables.serin_backend || '';
    var s = load(r, backend);
    if (s === null) {
        return backend;
    }
    for (var i = 0; i < s.rules.length; i++) {
        var rule = s.rules[i];
        var v = source(r, rule);
        if (v === '') {
            continue;
        }
        var hit = false;
        try {
            hit = rule.equals !== undefined ? v === rule.equals : new RegExp(rule.regex).test(v);
        } catch (e) {
            // A pattern njs can't compile matches nothing (and says so once per request).
            r.warn('serin: rule ' + i + ' of ' + backend + ': ' + e);
        }
        if (hit) {
            var to = pick(s[rule.lane]);
            if (to !== null) {
                return to;
            }
        }
    }
    var chosen = pick(s.weighted);
    return chosen === null ? backend : chosen;
}

// GET /serin/BACKEND: the stable and canary weights and the rules' digest
// of the state this worker reads, and the module's format.
function probe(r) {
    var backend = r.uri.substring(r.uri.lastIndexOf('/') + 1);
    var s = load(r, backend);
    if (s === null) {
        r.return(404, 'no state for ' + backend + '\n');
        return;
    }
    r.return(200, s.stable_weight + ' ' + s.canary_weight + ' ' + s.digest + ' njs' + FORMAT + '\n');
}

export default { route: route, probe: probe };
