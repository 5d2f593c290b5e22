/**
 * The page's two files, served from memory: one small style sheet (system fonts, large
 * tap targets, a cheap phone's narrow screen) and the small script that keeps the live
 * regions fresh from /events. Kept here as text so they are compiled into dist/ with the
 * server and travel in the npm package: the board has no internet, so nothing comes from
 * a CDN or a font service. The script is ES5, no framework, and the page works without
 * it (assets.test.ts checks it parses).
 */

import { createHash } from 'node:crypto'

export const STYLE_CSS = `*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:17px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans CJK SC","Microsoft YaHei",sans-serif;color:#111;background:#f4f4f0}
header{background:#1d3557;color:#fff;padding:.5rem .75rem}
header h1{font-size:1.05rem;margin:.2rem 0 .4rem}
header a{color:#fff}
.lang{float:right;padding:.5rem;margin:-.3rem -.3rem 0 0}
nav{display:flex;flex-wrap:wrap;gap:.3rem;clear:both}
nav a,nav .link{display:inline-block;min-height:44px;padding:.6rem .75rem;border-radius:6px;background:#274b7a;color:#fff;text-decoration:none;border:0;font:inherit;margin:0}
nav form{margin-left:auto}
nav a.current{background:#fff;color:#1d3557;font-weight:bold}
main{padding:.5rem .75rem 2rem;max-width:44rem}
h2{font-size:1.15rem;margin:1rem 0 .5rem}
.top{padding:.6rem .75rem}
.verdict{margin:0;padding:.8rem;border-radius:8px;font-weight:bold;font-size:1.1rem}
.verdict-ok{background:#d8f3dc;color:#1b4332}
.verdict-delayed{background:#fff3bf;color:#5c3c00}
.verdict-down{background:#c1121f;color:#fff}
.reasons{margin:.4rem 0 0;padding-left:1.2rem}
.facts dt{font-weight:bold;margin-top:.6rem}
.facts dd{margin:0 0 0 .2rem}
.badge{display:inline-block;padding:0 .45rem;border-radius:4px;background:#dde;font-size:.9rem}
.good{background:#d8f3dc}.bad,.terminal-lost .badge,.stage-unconfirmed{background:#c1121f;color:#fff}
ul.alerts,ul.inbox,ul.terminals{list-style:none;padding:0;margin:0}
.alert,.broadcast{background:#fff;border:1px solid #ccd;border-radius:8px;padding:.6rem;margin:.5rem 0}
.alert a{display:block;min-height:44px;padding:.3rem 0;color:#111}
.who,.text{margin:.3rem 0}
.text{white-space:pre-wrap;overflow-wrap:anywhere}
.call110{background:#c1121f;color:#fff;font-weight:bold;padding:.5rem;border-radius:6px}
.timeline{margin:.4rem 0 0;padding-left:1.3rem}
.timeline .todo{color:#999}
time{white-space:nowrap}
.timeline .done .stage{font-weight:bold}
.urgency-urgent{border-left:6px solid #c1121f}.urgency-warning{border-left:6px solid #e9a400}
.urgency-urgent .urgency{background:#c1121f;color:#fff}.urgency-warning .urgency{background:#e9a400}
form.inline{display:inline}
label{display:block;margin:.2rem 0}
.choice{display:inline-block;min-height:44px;padding:.55rem .7rem;margin:.2rem;border:1px solid #99a;border-radius:6px;background:#fff}
input,textarea,button{font:inherit}
input:not([type=radio]),textarea{width:100%;min-height:44px;padding:.5rem;border:1px solid #889;border-radius:6px}
.inline input{width:5rem}
fieldset{border:0;padding:0;margin:.6rem 0}
button{min-height:44px;padding:.55rem 1rem;border-radius:6px;border:1px solid #1d3557;background:#fff;margin:.2rem 0}
button.primary{background:#1d3557;color:#fff;width:100%;font-size:1.15rem}
.invalid input,.invalid textarea{border:2px solid #c1121f}
.error{color:#c1121f;font-weight:bold;margin:.2rem 0}
.notice{padding:.7rem;border-radius:8px;font-weight:bold}
.notice-ok{background:#d8f3dc}.notice-error{background:#c1121f;color:#fff}
pre{white-space:pre-wrap;background:#fff;padding:.5rem;border:1px solid #ccd}
.live-off-note{display:none}
.live-off .live-off-note{display:block;position:fixed;bottom:0;left:0;right:0;margin:0;padding:.4rem;background:#fff3bf;text-align:center}
`

export const APP_JS = `(function () {
  'use strict';
  var body = document.body;
  var url = body && body.getAttribute('data-events');
  if (!url || !window.EventSource || !window.JSON) return;
  var held = {};
  function apply(name, markup) {
    var el = document.querySelector('[data-live="' + name + '"]');
    // A region with a problem to fix (data-live-hold) keeps it, and what was typed, until the next page.
    if (!el || el.hasAttribute('data-live-hold')) return;
    var active = document.activeElement;
    if (active && active !== body && el.contains(active)) { held[name] = markup; return; }
    delete held[name];
    if (el.innerHTML !== markup) el.innerHTML = markup;
  }
  document.addEventListener('focusout', function () {
    setTimeout(function () { for (var name in held) if (held.hasOwnProperty(name)) apply(name, held[name]); }, 0);
  });
  var source = new EventSource(url);
  source.addEventListener('update', function (e) {
    var message;
    try { message = JSON.parse(e.data); } catch (err) { return; }
    var regions = message && message.regions;
    if (!regions) return;
    for (var name in regions) if (regions.hasOwnProperty(name)) apply(name, regions[name]);
    body.className = body.className.replace(/\\s*live-off/g, '');
  });
  source.addEventListener('error', function () {
    if (!/live-off/.test(body.className)) body.className += ' live-off';
  });
})();
`

export interface Asset {
  type: string
  body: Buffer
  etag: string
}

function asset(type: string, text: string): Asset {
  const body = Buffer.from(text, 'utf8')
  return { type, body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"` }
}

export const ASSETS: Record<string, Asset> = {
  '/style.css': asset('text/css; charset=utf-8', STYLE_CSS),
  '/app.js': asset('text/javascript; charset=utf-8', APP_JS),
}
