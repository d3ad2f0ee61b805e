/* revbot sandbox workspace: a small Slack look-alike that talks to /sandbox/state and /sandbox/act. */
(function () {
  "use strict";

  const POLL_MS = 700;
  const OPTIONS_DEBOUNCE_MS = 250;
  const SLASH_ONLY_HINT = "The sandbox only takes slash commands (try /revbot help)";

  const S = {
    user: null,          // current user id
    channel: null,       // current channel id or "home"
    state: null,         // last applied /state answer
    usersById: {},
    channelsById: {},
    epoch: 0,            // bumped by every act or navigation: older /state answers are dropped
    seq: 0,
    appliedSeq: 0,
    keys: {},            // JSON of what each region was last rendered from
    expanded: new Set(), // thread parents whose replies are shown
    seenTs: null,        // top-level message ids already shown in this channel
    scrollToBottom: true,
    pinned: true,        // the message list is scrolled to the bottom
    modal: null,         // {id, key, root, inputs, submitting, localErrors}
    suggestion: -1,
    toastTimer: null,
    uid: 0,
    homeSentFor: null,   // user for whom the Home entry was last opened
    homeAnswer: null,    // "ok" or the error the backend gave for opening Home
  };

  const $ = (id) => document.getElementById(id);

  /* ------------------------------------------------------------------ helpers */

  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v == null || v === false) continue;
        if (k === "class") el.className = v;
        else if (k === "text") el.textContent = v;
        else if (k === "data") {
          for (const [dk, dv] of Object.entries(v)) if (dv != null) el.dataset[dk] = String(dv);
        } else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
        else if (v === true) el.setAttribute(k, "");
        else el.setAttribute(k, String(v));
      }
    }
    for (const kid of kids.flat()) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  function escapeHtml(s) {
    return String(s)
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&#39;");
  }

  // Slack escapes &, < and > in message text; turn them back into characters.
  function decodeEntities(s) {
    return String(s).replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  }

  function textOf(t) {
    if (t == null) return "";
    if (typeof t === "string") return t;
    return String(t.text == null ? "" : t.text);
  }

  function split1(s, sep) {
    const i = s.indexOf(sep);
    return i < 0 ? [s, null] : [s.slice(0, i), s.slice(i + 1)];
  }

  function pad2(n) {
    return String(n).padStart(2, "0");
  }

  function safeUrl(url) {
    const u = String(url || "").trim();
    return /^(https?:\/\/|mailto:)/i.test(u) ? u : null;
  }

  function safeImageUrl(url) {
    const u = String(url || "").trim();
    if (/^(https?:\/\/|data:image\/|\/(?!\/))/i.test(u)) return u;
    return null;
  }

  function openUrl(url) {
    const u = safeUrl(url);
    if (u) window.open(u, "_blank", "noopener");
  }

  function nextUid() {
    S.uid += 1;
    return "bk" + S.uid;
  }

  /* ------------------------------------------------------------------ emoji */

  const EMOJI = {
    fire: "🔥", white_check_mark: "✅", heavy_check_mark: "✔️", no_entry: "⛔", no_entry_sign: "🚫",
    recycle: "♻️", rotating_light: "🚨", large_orange_circle: "🟠", large_yellow_circle: "🟡",
    large_green_circle: "🟢", large_blue_circle: "🔵", red_circle: "🔴", white_circle: "⚪",
    seedling: "🌱", wave: "👋", tada: "🎉", warning: "⚠️", eyes: "👀", hourglass: "⌛",
    hourglass_flowing_sand: "⏳", bar_chart: "📊", chart_with_upwards_trend: "📈",
    chart_with_downwards_trend: "📉", memo: "📝", bell: "🔔", busts_in_silhouette: "👥",
    bust_in_silhouette: "👤", x: "❌", star: "⭐", rocket: "🚀", zap: "⚡", bulb: "💡",
    moneybag: "💰", handshake: "🤝", snowflake: "❄️", sparkles: "✨", alarm_clock: "⏰",
    stopwatch: "⏱️", information_source: "ℹ️", question: "❓", exclamation: "❗",
    pushpin: "📌", link: "🔗", lock: "🔒", speech_balloon: "💬", email: "📧", phone: "📞",
    office: "🏢", calendar: "📆", spiral_calendar_pad: "🗓️", date: "📅", clipboard: "📋",
    trophy: "🏆", ok_hand: "👌", thumbsup: "👍", "+1": "👍", thumbsdown: "👎", "-1": "👎",
    point_right: "👉", muscle: "💪", pray: "🙏", thinking_face: "🤔", zzz: "💤", mag: "🔍",
    inbox_tray: "📥", outbox_tray: "📤", arrows_counterclockwise: "🔄", arrow_right: "➡️",
    heavy_plus_sign: "➕", robot_face: "🤖", clock1: "🕐", stop_sign: "🛑", tools: "🛠️",
    gear: "⚙️", crown: "👑", dart: "🎯", hammer_and_wrench: "🛠️", page_facing_up: "📄",
    envelope: "✉️", mailbox: "📫", sos: "🆘", new: "🆕", black_circle: "⚫", sunny: "☀️",
  };

  function emojify(s) {
    return String(s).replace(/:([a-z0-9_+\-]+):/g, (m, name) => EMOJI[name] || m);
  }

  /* ------------------------------------------------------------------ dates */

  const MONTHS = ["January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December"];
  const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

  function ordinal(n) {
    const t = n % 100;
    if (t >= 11 && t <= 13) return n + "th";
    return n + ({ 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th");
  }

  function hhmm(d) {
    return pad2(d.getHours()) + ":" + pad2(d.getMinutes());
  }

  function agoText(d) {
    const secs = Math.round((Date.now() - d.getTime()) / 1000);
    const abs = Math.abs(secs);
    const units = [[86400, "day"], [3600, "hour"], [60, "minute"]];
    for (const [size, name] of units) {
      if (abs >= size) {
        const n = Math.floor(abs / size);
        const word = n + " " + name + (n === 1 ? "" : "s");
        return secs >= 0 ? word + " ago" : "in " + word;
      }
    }
    return "just now";
  }

  const DATE_TOKENS = {
    date_num: (d) => d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate()),
    date: (d) => MONTHS[d.getMonth()] + " " + ordinal(d.getDate()) + ", " + d.getFullYear(),
    date_pretty: (d) => DATE_TOKENS.date(d),
    date_short: (d) => MONTHS[d.getMonth()].slice(0, 3) + " " + d.getDate() + ", " + d.getFullYear(),
    date_short_pretty: (d) => MONTHS[d.getMonth()].slice(0, 3) + " " + d.getDate(),
    date_long: (d) => DAYS[d.getDay()] + ", " + DATE_TOKENS.date(d),
    date_long_pretty: (d) => DATE_TOKENS.date_long(d),
    date_long_full: (d) => DATE_TOKENS.date_long(d),
    time: (d) => hhmm(d),
    time_secs: (d) => hhmm(d) + ":" + pad2(d.getSeconds()),
    ago: (d) => agoText(d),
  };

  // A Slack date token in the browser's local time, or null when it can't be formatted.
  function formatSlackDate(epoch, fmt) {
    const secs = Number(epoch);
    if (!isFinite(secs) || fmt == null) return null;
    const d = new Date(secs * 1000);
    if (isNaN(d.getTime())) return null;
    let unknown = false;
    const out = String(fmt).replace(/\{([a-z_]+)\}/g, (m, tok) => {
      const f = DATE_TOKENS[tok];
      if (!f) {
        unknown = true;
        return m;
      }
      return f(d);
    });
    return unknown ? null : out;
  }

  function isoOf(epoch) {
    const d = new Date(Number(epoch) * 1000);
    return isNaN(d.getTime()) ? "" : d.toString();
  }

  /* ------------------------------------------------------------------ names */

  function userName(id) {
    const u = S.usersById[id];
    return u ? u.name : null;
  }

  function channelName(id) {
    const c = S.channelsById[id];
    return c ? c.name : null;
  }

  function initials(name) {
    const words = String(name || "?").trim().split(/\s+/).filter(Boolean);
    if (!words.length) return "?";
    if (words.length === 1) return words[0].slice(0, 1).toUpperCase();
    return (words[0][0] + words[1][0]).toUpperCase();
  }

  const AVATAR_COLORS = ["#e8912d", "#2bac76", "#1264a3", "#cd2553", "#9b59b6", "#0b4c8c", "#c05b00", "#4a6e2a"];

  function avatarColor(key) {
    let n = 0;
    for (const ch of String(key)) n = (n * 31 + ch.charCodeAt(0)) >>> 0;
    return AVATAR_COLORS[n % AVATAR_COLORS.length];
  }

  /* ------------------------------------------------------------------ mrkdwn */

  function chipHtml(cls, text, attrs) {
    return '<span class="mention ' + cls + '"' + (attrs || "") + ">" + escapeHtml(text) + "</span>";
  }

  function angleToHtml(inner) {
    const first = inner[0];
    if (first === "@") {
      const [id, label] = split1(inner.slice(1), "|");
      const name = userName(id) || (label ? decodeEntities(label) : id);
      const cls = "user" + (id === S.user ? " me" : "");
      return chipHtml(cls, "@" + name, ' data-user-id="' + escapeHtml(id) + '"');
    }
    if (first === "#") {
      const [id, label] = split1(inner.slice(1), "|");
      const name = channelName(id) || (label ? decodeEntities(label) : id);
      return chipHtml("channel", "#" + name, ' data-channel-id="' + escapeHtml(id) + '"');
    }
    if (first === "!") {
      const body = inner.slice(1);
      if (body.startsWith("date^")) {
        const [spec, fallback] = split1(body, "|");
        const parts = spec.split("^");
        const formatted = formatSlackDate(parts[1], parts[2]);
        const text = formatted != null ? formatted : decodeEntities(fallback || "");
        let html = '<span class="slack-date" title="' + escapeHtml(isoOf(parts[1])) + '">' +
          escapeHtml(text) + "</span>";
        const link = parts[3] ? safeUrl(decodeEntities(parts[3])) : null;
        if (link) html = '<a href="' + escapeHtml(link) + '" target="_blank" rel="noopener noreferrer">' + html + "</a>";
        return html;
      }
      if (body.startsWith("subteam^")) {
        const [spec, label] = split1(body, "|");
        return chipHtml("group", label ? decodeEntities(label) : "@" + spec.slice(8));
      }
      const [kw, label] = split1(body, "|");
      if (kw === "here" || kw === "channel" || kw === "everyone") return chipHtml("broadcast", "@" + kw);
      return escapeHtml(decodeEntities(label || body));
    }
    const [url, label] = split1(inner, "|");
    const href = safeUrl(decodeEntities(url));
    const text = label != null && label !== "" ? emojify(decodeEntities(label)) : decodeEntities(url);
    if (!href) return escapeHtml(text);
    return '<a href="' + escapeHtml(href) + '" target="_blank" rel="noopener noreferrer">' + escapeHtml(text) + "</a>";
  }

  function formatInline(line) {
    let s = escapeHtml(decodeEntities(line));
    s = emojify(s);
    s = s.replace(/(^|[^\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])/g, "$1<b>$2</b>");
    s = s.replace(/(^|[^\w_])_(?=\S)([^_\n]*?\S)_(?![\w_])/g, "$1<i>$2</i>");
    s = s.replace(/(^|[^\w~])~(?=\S)([^~\n]*?\S)~(?![\w~])/g, "$1<s>$2</s>");
    return s;
  }

  // Slack mrkdwn to HTML: everything the text carries is escaped; only our own tags are added.
  function mrkdwnToHtml(src) {
    let s = String(src == null ? "" : src).replace(/[\u0001\u0002]/g, "");
    const held = [];
    const hold = (html) => "\u0001" + (held.push(html) - 1) + "\u0002";
    s = s.replace(/```([\s\S]*?)```/g, (m, code) =>
      hold('<pre class="mrkdwn-pre">' + escapeHtml(decodeEntities(code.replace(/^\n/, "").replace(/\n$/, ""))) + "</pre>"));
    s = s.replace(/`([^`\n]+)`/g, (m, code) => hold('<code class="mrkdwn-code">' + escapeHtml(decodeEntities(code)) + "</code>"));
    s = s.replace(/<([^<>\n]+)>/g, (m, inner) => hold(angleToHtml(inner)));

    const groups = [];
    for (const line of s.split("\n")) {
      const q = line.match(/^(?:>|&gt;) ?/);
      const quote = !!q;
      const html = formatInline(quote ? line.slice(q[0].length) : line);
      const last = groups[groups.length - 1];
      if (last && last.quote === quote) last.lines.push(html);
      else groups.push({ quote, lines: [html] });
    }
    let html = groups
      .map((g) => (g.quote ? '<blockquote class="mrkdwn-quote">' + g.lines.join("<br>") + "</blockquote>" : g.lines.join("<br>")))
      .join("");
    html = html.replace(/\u0001(\d+)\u0002/g, (m, i) => held[Number(i)] || "");
    html = html.replace(/<br>(<pre)/g, "$1").replace(/(<\/pre>)<br>/g, "$1");
    return html;
  }

  function renderText(t, cls) {
    if (t == null) return h("span", { class: cls || "" });
    if (typeof t === "string") t = { type: "mrkdwn", text: t };
    if (t.type === "mrkdwn") {
      const el = h("span", { class: "mrkdwn " + (cls || "") });
      el.innerHTML = mrkdwnToHtml(t.text);
      return el;
    }
    return h("span", { class: "plain " + (cls || ""), text: t.emoji === false ? textOf(t) : emojify(textOf(t)) });
  }

  /* ------------------------------------------------------------------ rich text */

  function appendRichInline(parent, elements) {
    for (const e of elements || []) {
      let node;
      const style = e.style || {};
      switch (e.type) {
        case "text":
          node = document.createTextNode(String(e.text || ""));
          break;
        case "link": {
          const href = safeUrl(e.url);
          node = href
            ? h("a", { href, target: "_blank", rel: "noopener noreferrer", text: e.text || e.url })
            : document.createTextNode(String(e.text || e.url || ""));
          break;
        }
        case "user":
          node = h("span", { class: "mention user" + (e.user_id === S.user ? " me" : ""), text: "@" + (userName(e.user_id) || e.user_id) });
          break;
        case "channel":
          node = h("span", { class: "mention channel", text: "#" + (channelName(e.channel_id) || e.channel_id) });
          break;
        case "usergroup":
          node = h("span", { class: "mention group", text: "@" + e.usergroup_id });
          break;
        case "broadcast":
          node = h("span", { class: "mention broadcast", text: "@" + (e.range || "here") });
          break;
        case "emoji": {
          let ch = null;
          if (e.unicode) {
            try {
              ch = String.fromCodePoint(...String(e.unicode).split("-").map((x) => parseInt(x, 16)));
            } catch (err) {
              ch = null;
            }
          }
          node = document.createTextNode(ch || EMOJI[e.name] || ":" + e.name + ":");
          break;
        }
        case "date": {
          const f = formatSlackDate(e.timestamp, e.format);
          node = h("span", { class: "slack-date", title: isoOf(e.timestamp), text: f != null ? f : e.fallback || "" });
          break;
        }
        case "color":
          node = document.createTextNode(String(e.value || ""));
          break;
        default:
          node = h("span", { class: "unsupported", text: "[unsupported rich text: " + e.type + "]" });
      }
      if (style.code) node = h("code", { class: "mrkdwn-code" }, node);
      if (style.strike) node = h("s", null, node);
      if (style.italic) node = h("i", null, node);
      if (style.bold) node = h("b", null, node);
      parent.append(node);
    }
  }

  function renderRichText(block) {
    const wrap = h("div", { class: "rich-text" });
    for (const e of block.elements || []) {
      if (e.type === "rich_text_section") {
        const p = h("div", { class: "rt-section" });
        appendRichInline(p, e.elements);
        wrap.append(p);
      } else if (e.type === "rich_text_list") {
        const list = h(e.style === "ordered" ? "ol" : "ul", { class: "rt-list" });
        if (e.indent) list.style.marginLeft = 20 * Number(e.indent) + "px";
        for (const item of e.elements || []) {
          const li = h("li");
          appendRichInline(li, item.elements);
          list.append(li);
        }
        wrap.append(list);
      } else if (e.type === "rich_text_quote") {
        const q = h("blockquote", { class: "mrkdwn-quote" });
        appendRichInline(q, e.elements);
        wrap.append(q);
      } else if (e.type === "rich_text_preformatted") {
        const pre = h("pre", { class: "mrkdwn-pre" });
        appendRichInline(pre, e.elements);
        wrap.append(pre);
      } else {
        wrap.append(h("div", { class: "unsupported", text: "[unsupported rich text: " + e.type + "]" }));
      }
    }
    return wrap;
  }

  /* ------------------------------------------------------------------ interactive elements */

  function optionObject(o) {
    return o ? { text: o.text, value: o.value } : null;
  }

  function flattenOptions(options, groups) {
    const out = [];
    for (const o of options || []) out.push(o);
    for (const g of groups || []) for (const o of g.options || []) out.push(o);
    return out;
  }

  function fillSelect(sel, options, groups, placeholder) {
    const map = new Map();
    sel.append(h("option", { value: "", class: "placeholder" }, placeholder));
    const add = (parent, o) => {
      map.set(String(o.value), o);
      parent.append(h("option", { value: o.value == null ? "" : o.value }, emojify(textOf(o.text))));
    };
    for (const o of options || []) add(sel, o);
    for (const g of groups || []) {
      const og = h("optgroup", { label: textOf(g.label) });
      for (const o of g.options || []) add(og, o);
      sel.append(og);
    }
    const mark = () => sel.classList.toggle("is-placeholder", sel.value === "");
    sel.addEventListener("change", mark);
    return { map, mark };
  }

  function buildExternalSelect(el, blockId, actionId, ctx, onChange) {
    const wrap = h("div", { class: "bk-external", data: { blockId, actionId } });
    const input = h("input", {
      type: "text", class: "bk-input bk-external-input", autocomplete: "off", role: "combobox",
      "aria-expanded": "false", placeholder: textOf(el.placeholder) || "Type to search…",
      data: { blockId, actionId },
    });
    const list = h("ul", { class: "bk-external-options", role: "listbox", hidden: true });
    wrap.append(input, list);
    let selected = el.initial_option ? optionObject(el.initial_option) : null;
    let timer = null;
    let reqNo = 0;
    let items = [];
    let active = -1;

    const sync = () => {
      wrap.dataset.value = selected ? String(selected.value) : "";
      input.value = selected ? emojify(textOf(selected.text)) : "";
    };
    const hide = () => {
      list.hidden = true;
      wrap.classList.remove("open");
      input.setAttribute("aria-expanded", "false");
    };
    const highlight = () => {
      [...list.querySelectorAll(".bk-external-option")].forEach((li, i) => li.classList.toggle("active", i === active));
    };
    const pick = (o) => {
      selected = optionObject(o);
      sync();
      hide();
      if (onChange) onChange(o.value, selected);
    };
    const show = (opts) => {
      items = opts;
      active = opts.length ? 0 : -1;
      list.replaceChildren();
      if (!opts.length) list.append(h("li", { class: "bk-external-empty", text: "No matches" }));
      opts.forEach((o) => {
        const li = h("li", { class: "bk-external-option", role: "option", data: { value: o.value } }, emojify(textOf(o.text)));
        li.addEventListener("mousedown", (ev) => {
          ev.preventDefault();
          pick(o);
        });
        list.append(li);
      });
      highlight();
      list.hidden = false;
      wrap.classList.add("open");
      input.setAttribute("aria-expanded", "true");
      if (wrap.closest(".modal")) list.scrollIntoView({ block: "nearest" });
    };
    const query = () => {
      const my = ++reqNo;
      const typed = selected && input.value === emojify(textOf(selected.text)) ? "" : input.value;
      post({
        type: "options", user: S.user, view_id: ctx.viewId || null, action_id: actionId, block_id: blockId,
        value: typed, channel: ctx.channel || S.channel, message_ts: ctx.messageTs || null,
      }).then((res) => {
        if (my !== reqNo || document.activeElement !== input) return;
        if (!res || res.ok === false) show([]);
        else show(flattenOptions(res.options, res.option_groups));
      });
    };
    const schedule = () => {
      clearTimeout(timer);
      timer = setTimeout(query, OPTIONS_DEBOUNCE_MS);
    };

    input.addEventListener("input", () => {
      if (selected && input.value !== emojify(textOf(selected.text))) {
        selected = null;
        wrap.dataset.value = "";
      }
      schedule();
    });
    input.addEventListener("focus", schedule);
    input.addEventListener("blur", () => {
      clearTimeout(timer);
      reqNo++;
      hide();
      sync();
    });
    input.addEventListener("keydown", (ev) => {
      if (list.hidden) return;
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        if (!items.length) return;
        active = (active + (ev.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
        highlight();
      } else if (ev.key === "Enter") {
        ev.preventDefault();
        if (active >= 0 && items[active]) pick(items[active]);
      } else if (ev.key === "Escape") {
        ev.preventDefault();
        ev.stopPropagation();
        hide();
      }
    });
    sync();
    return {
      node: wrap,
      focusable: input,
      get: () => ({ type: "external_select", selected_option: selected }),
      set: (st) => {
        if (st && "selected_option" in st) {
          selected = st.selected_option;
          sync();
        }
      },
    };
  }

  function buildOverflow(el, blockId, actionId, onChange) {
    const wrap = h("div", { class: "bk-overflow", data: { blockId, actionId } });
    const btn = h("button", { type: "button", class: "btn bk-overflow-button", "aria-label": "More actions", data: { blockId, actionId } }, "⋯");
    const menu = h("div", { class: "bk-overflow-menu", role: "menu", hidden: true });
    for (const o of el.options || []) {
      const item = h("button", { type: "button", class: "bk-overflow-option", role: "menuitem", data: { value: o.value } }, emojify(textOf(o.text)));
      item.addEventListener("click", (ev) => {
        ev.stopPropagation();
        menu.hidden = true;
        if (o.url) openUrl(o.url);
        onChange(o.value, optionObject(o));
      });
      menu.append(item);
    }
    btn.addEventListener("click", (ev) => {
      ev.stopPropagation();
      const wasHidden = menu.hidden;
      closeMenus();
      menu.hidden = !wasHidden;
    });
    wrap.append(btn, menu);
    return { node: wrap, focusable: btn, get: () => ({ type: "overflow", selected_option: null }), set: () => {} };
  }

  function closeMenus() {
    let closed = false;
    document.querySelectorAll(".bk-overflow-menu:not([hidden])").forEach((m) => {
      m.hidden = true;
      closed = true;
    });
    return closed;
  }

  // An input-like element. onChange (value, extra) is given outside input blocks, where changes act at once.
  function buildControl(el, blockId, actionId, ctx, onChange) {
    const type = el.type;
    const data = { blockId, actionId };
    const placeholder = textOf(el.placeholder);
    switch (type) {
      case "plain_text_input":
      case "email_text_input":
      case "url_text_input":
      case "number_input": {
        let input;
        if (type === "plain_text_input" && el.multiline) {
          input = h("textarea", { class: "bk-input bk-textarea", rows: 4, placeholder: placeholder || null, maxlength: el.max_length || null, data });
        } else {
          const kind = { email_text_input: "email", url_text_input: "url", number_input: "number" }[type] || "text";
          input = h("input", {
            type: kind, class: "bk-input", placeholder: placeholder || null, maxlength: el.max_length || null, data,
            min: type === "number_input" ? el.min_value : null, max: type === "number_input" ? el.max_value : null,
            step: type === "number_input" ? (el.is_decimal_allowed ? "any" : "1") : null,
          });
        }
        input.value = el.initial_value == null ? "" : String(el.initial_value);
        if (onChange) input.addEventListener("change", () => onChange(input.value));
        return {
          node: input, focusable: input,
          get: () => ({ type, value: input.value === "" ? null : input.value }),
          set: (st) => { if (st && "value" in st) input.value = st.value == null ? "" : st.value; },
        };
      }
      case "static_select":
      case "users_select":
      case "conversations_select":
      case "channels_select": {
        const sel = h("select", { class: "bk-select", data });
        let options = el.options;
        let groups = el.option_groups;
        let initial = el.initial_option ? el.initial_option.value : null;
        if (type === "users_select") {
          options = Object.values(S.usersById).map((u) => ({ text: { type: "plain_text", text: u.name }, value: u.id }));
          groups = null;
          initial = el.initial_user || null;
        } else if (type !== "static_select") {
          options = Object.values(S.channelsById).filter((c) => c.kind !== "home")
            .map((c) => ({ text: { type: "plain_text", text: (c.kind === "dm" ? "" : "#") + c.name }, value: c.id }));
          groups = null;
          initial = el.initial_conversation || el.initial_channel || null;
        }
        const { map, mark } = fillSelect(sel, options, groups, placeholder || "Select an option");
        sel.value = initial != null && map.has(String(initial)) ? String(initial) : "";
        mark();
        if (onChange) {
          sel.addEventListener("change", () => {
            if (sel.value !== "") onChange(sel.value, optionObject(map.get(sel.value)));
          });
        }
        const get = () => {
          const o = map.get(sel.value);
          if (type === "users_select") return { type, selected_user: o ? o.value : null };
          if (type === "conversations_select") return { type, selected_conversation: o ? o.value : null };
          if (type === "channels_select") return { type, selected_channel: o ? o.value : null };
          return { type, selected_option: sel.value !== "" && o ? optionObject(o) : null };
        };
        const set = (st) => {
          if (!st) return;
          const v = st.selected_option ? st.selected_option.value : st.selected_user || st.selected_conversation || st.selected_channel;
          sel.value = v != null && map.has(String(v)) ? String(v) : "";
          mark();
        };
        return { node: sel, focusable: sel, get, set };
      }
      case "multi_static_select": {
        const all = flattenOptions(el.options, el.option_groups);
        const sel = h("select", { class: "bk-select bk-multi", multiple: true, size: Math.min(Math.max(all.length, 2), 6), data });
        const map = new Map();
        const add = (parent, o) => {
          map.set(String(o.value), o);
          parent.append(h("option", { value: o.value }, emojify(textOf(o.text))));
        };
        for (const o of el.options || []) add(sel, o);
        for (const g of el.option_groups || []) {
          const og = h("optgroup", { label: textOf(g.label) });
          for (const o of g.options || []) add(og, o);
          sel.append(og);
        }
        const setValues = (vals) => {
          const want = new Set((vals || []).map((o) => String(o.value)));
          for (const opt of sel.options) opt.selected = want.has(opt.value);
        };
        setValues(el.initial_options);
        const chosen = () => [...sel.selectedOptions].map((opt) => optionObject(map.get(opt.value)));
        if (onChange) sel.addEventListener("change", () => onChange(chosen().map((o) => o.value), chosen()));
        return {
          node: sel, focusable: sel,
          get: () => ({ type, selected_options: chosen() }),
          set: (st) => { if (st && st.selected_options) setValues(st.selected_options); },
        };
      }
      case "external_select":
        return buildExternalSelect(el, blockId, actionId, ctx, onChange);
      case "datepicker":
      case "timepicker": {
        const isDate = type === "datepicker";
        const input = h("input", { type: isDate ? "date" : "time", class: "bk-input bk-date", data, "aria-label": placeholder || null });
        input.value = (isDate ? el.initial_date : el.initial_time) || "";
        if (onChange) input.addEventListener("change", () => { if (input.value) onChange(input.value); });
        const key = isDate ? "selected_date" : "selected_time";
        return {
          node: input, focusable: input,
          get: () => ({ type, [key]: input.value || null }),
          set: (st) => { if (st && key in st) input.value = st[key] || ""; },
        };
      }
      case "checkboxes":
      case "radio_buttons": {
        const multi = type === "checkboxes";
        const box = h("div", { class: multi ? "bk-checkboxes" : "bk-radios", data });
        const name = nextUid();
        const map = new Map();
        const initial = multi ? el.initial_options || [] : el.initial_option ? [el.initial_option] : [];
        const initialSet = new Set(initial.map((o) => String(o.value)));
        for (const o of el.options || []) {
          map.set(String(o.value), o);
          const inp = h("input", { type: multi ? "checkbox" : "radio", name, value: o.value });
          inp.checked = initialSet.has(String(o.value));
          const label = h("label", { class: "bk-choice" }, inp, h("span", { class: "bk-choice-text" }, renderText(o.text)));
          if (o.description) label.append(h("span", { class: "bk-choice-desc" }, renderText(o.description)));
          box.append(label);
        }
        const chosen = () => [...box.querySelectorAll("input:checked")].map((i) => optionObject(map.get(i.value)));
        if (onChange) box.addEventListener("change", () => {
          const c = chosen();
          onChange(multi ? c.map((o) => o.value) : c[0] ? c[0].value : null, multi ? c : c[0] || null);
        });
        const set = (st) => {
          if (!st) return;
          const vals = multi ? st.selected_options || [] : st.selected_option ? [st.selected_option] : [];
          const want = new Set(vals.map((o) => String(o.value)));
          for (const i of box.querySelectorAll("input")) i.checked = want.has(i.value);
        };
        return {
          node: box, focusable: box.querySelector("input"),
          get: () => (multi ? { type, selected_options: chosen() } : { type, selected_option: chosen()[0] || null }),
          set,
        };
      }
      case "overflow":
        return buildOverflow(el, blockId, actionId, onChange || (() => {}));
      default:
        return {
          node: h("span", { class: "unsupported", text: "[unsupported element: " + type + "]" }),
          focusable: null, get: () => ({ type }), set: () => {},
        };
    }
  }

  function buildButton(el, blockId, actionId, ctx) {
    const cls = "btn bk-button" + (el.style === "primary" ? " primary" : el.style === "danger" ? " danger" : "");
    const btn = h("button", {
      type: "button", class: cls,
      data: { actionId, blockId, value: el.value == null ? "" : el.value, url: el.url || null },
    }, emojify(textOf(el.text)));
    btn.addEventListener("click", () => {
      if (el.url) openUrl(el.url);
      btn.disabled = true;
      const body = {
        type: "click", user: S.user, channel: ctx.channel, message_ts: ctx.messageTs || null,
        action_id: actionId, block_id: blockId, value: el.value == null ? null : el.value, view_id: ctx.viewId || null,
      };
      if (ctx.ephemeralId) body.ephemeral_id = ctx.ephemeralId;
      act(body).then((res) => {
        btn.disabled = false;
        if (!res.ok) showToast(res.error || "That didn't work");
      });
    });
    return btn;
  }

  function buildImage(el, cls) {
    const src = safeImageUrl(el.image_url || (el.slack_file && el.slack_file.url));
    if (!src) return h("span", { class: "unsupported", text: "[image: " + (el.alt_text || "no url") + "]" });
    const img = h("img", { class: cls, src, alt: el.alt_text || "", title: el.alt_text || null, loading: "lazy" });
    img.addEventListener("load", () => {
      if (S.pinned && img.closest("#messages")) {
        const box = $("messages");
        box.scrollTop = box.scrollHeight;
      }
    });
    return img;
  }

  // An element outside input blocks (section accessory, actions, context).
  function renderElement(el, blockId, index, ctx) {
    const actionId = el.action_id || "action-" + index;
    if (el.type === "button") return buildButton(el, blockId, actionId, ctx);
    if (el.type === "image") return buildImage(el, "accessory-image");
    const control = buildControl(el, blockId, actionId, ctx, (value, extra) => {
      const body = {
        type: "select", user: S.user, channel: ctx.channel, message_ts: ctx.messageTs || null,
        view_id: ctx.viewId || null, action_id: actionId, block_id: blockId, value,
      };
      if (extra && extra.value !== undefined) body.selected_option = extra;
      if (ctx.ephemeralId) body.ephemeral_id = ctx.ephemeralId;
      act(body).then((res) => { if (!res.ok) showToast(res.error || "That didn't work"); });
    });
    return control.node;
  }

  /* ------------------------------------------------------------------ blocks */

  function unsupported(type) {
    return h("div", { class: "block unsupported", text: "[unsupported block: " + (type || "unknown") + "]" });
  }

  function renderBlock(b, index, ctx) {
    if (!b || typeof b !== "object") return unsupported(typeof b);
    const type = b.type;
    const blockId = b.block_id || "block-" + index;
    const el = h("div", { class: "block block-" + String(type).replace(/[^a-z_]/gi, ""), data: { blockId } });
    switch (type) {
      case "header":
        el.append(h("div", { class: "header-text", text: emojify(textOf(b.text)) }));
        return el;
      case "section": {
        const main = h("div", { class: "section-main" });
        if (b.text) main.append(renderText(b.text, "section-text"));
        if (b.fields && b.fields.length) {
          const grid = h("div", { class: "section-fields" });
          for (const f of b.fields) grid.append(h("div", { class: "section-field" }, renderText(f)));
          main.append(grid);
        }
        el.append(main);
        if (b.accessory) el.append(h("div", { class: "section-accessory" }, renderElement(b.accessory, blockId, 0, ctx)));
        return el;
      }
      case "context":
        for (const e of b.elements || []) {
          if (e.type === "image") el.append(buildImage(e, "context-image"));
          else el.append(renderText(e, "context-text"));
        }
        return el;
      case "divider":
        el.append(h("hr"));
        return el;
      case "actions":
        (b.elements || []).forEach((e, i) => el.append(renderElement(e, blockId, i, ctx)));
        return el;
      case "image":
        if (b.title) el.append(h("div", { class: "image-title", text: emojify(textOf(b.title)) }));
        el.append(buildImage(b, "image-img"));
        return el;
      case "input": {
        const element = b.element || {};
        const actionId = element.action_id || "action-0";
        const id = nextUid();
        const label = h("label", { class: "input-label", for: id }, emojify(textOf(b.label)));
        if (b.optional) label.append(h("span", { class: "optional", text: " (optional)" }));
        el.append(label);
        const control = buildControl(element, blockId, actionId, ctx, null);
        if (control.focusable) control.focusable.id = id;
        el.append(control.node);
        if (b.hint) el.append(h("div", { class: "input-hint", text: emojify(textOf(b.hint)) }));
        el.append(h("div", { class: "input-error", role: "alert", hidden: true }));
        if (ctx.inputs) ctx.inputs.push({ blockId, actionId, type: element.type, control });
        return el;
      }
      case "rich_text":
        el.append(renderRichText(b));
        return el;
      default:
        return unsupported(type);
    }
  }

  function renderBlocks(blocks, ctx) {
    const wrap = h("div", { class: "blocks" });
    (blocks || []).forEach((b, i) => {
      try {
        wrap.append(renderBlock(b, i, ctx));
      } catch (err) {
        console.error(err);
        wrap.append(unsupported(b && b.type));
      }
    });
    return wrap;
  }

  /* ------------------------------------------------------------------ network */

  async function post(body) {
    try {
      const r = await fetch("/sandbox/act", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
      let data = null;
      try {
        data = await r.json();
      } catch (err) {
        data = null;
      }
      if (!data || typeof data !== "object") return { ok: r.ok, error: r.ok ? undefined : "HTTP " + r.status };
      return data;
    } catch (err) {
      return { ok: false, error: "revbot is not answering" };
    }
  }

  // Do something, then fetch the state at once; /state answers that were under way are dropped.
  async function act(body) {
    S.epoch++;
    const res = await post(body);
    S.epoch++;
    refresh();
    return res;
  }

  async function refresh() {
    const epoch = S.epoch;
    const seq = ++S.seq;
    const params = new URLSearchParams();
    if (S.user) params.set("user", S.user);
    if (S.channel) params.set("channel", S.channel);
    let data;
    try {
      const r = await fetch("/sandbox/state?" + params.toString(), { cache: "no-store", headers: { Accept: "application/json" } });
      if (r.status === 400 && S.user && epoch === S.epoch) {
        // An unknown user (e.g. an old ?user= after a reset): fall back to the default user.
        S.user = null;
        S.epoch++;
        return;
      }
      if (!r.ok) {
        // A channel the backend keeps failing on (e.g. an old ?channel=): go back to the default one.
        S.httpFailures = (S.httpFailures || 0) + 1;
        if (S.httpFailures >= 3 && S.channel && epoch === S.epoch) {
          S.channel = null;
          S.httpFailures = 0;
          S.epoch++;
        }
        throw new Error("HTTP " + r.status);
      }
      S.httpFailures = 0;
      data = await r.json();
      if (!data || typeof data !== "object") throw new Error("bad state");
    } catch (err) {
      showBanner(true);
      return;
    }
    showBanner(false);
    if (epoch !== S.epoch || seq < S.appliedSeq) return;
    S.appliedSeq = seq;
    try {
      applyState(data);
    } catch (err) {
      console.error(err);
    }
  }

  async function pollLoop() {
    await refresh();
    setTimeout(pollLoop, POLL_MS);
  }

  function showBanner(on) {
    $("error-banner").hidden = !on;
  }

  function showToast(text) {
    const t = $("toast");
    t.textContent = text;
    t.hidden = false;
    clearTimeout(S.toastTimer);
    S.toastTimer = setTimeout(() => { t.hidden = true; }, 5000);
  }

  /* ------------------------------------------------------------------ state → page */

  function currentKind() {
    if (S.channel === "home") return "home";
    const c = S.channelsById[S.channel];
    return c ? c.kind : "channel";
  }

  function syncUrl() {
    const params = new URLSearchParams(window.location.search);
    if (S.user) params.set("user", S.user);
    if (S.channel) params.set("channel", S.channel);
    const url = window.location.pathname + "?" + params.toString();
    if (url !== window.location.pathname + window.location.search) {
      try {
        history.replaceState(null, "", url);
      } catch (err) {
        /* ignore */
      }
    }
  }

  function applyState(s) {
    S.state = s;
    const users = Array.isArray(s.users) ? s.users : [];
    const channels = Array.isArray(s.channels) ? s.channels : [];
    S.usersById = {};
    for (const u of users) S.usersById[u.id] = u;
    S.channelsById = {};
    for (const c of channels) S.channelsById[c.id] = c;
    if (s.me) S.user = s.me;
    if (s.channel && s.channel !== S.channel) {
      S.channel = s.channel;
      S.scrollToBottom = true;
    }
    syncUrl();
    renderSidebar(users, channels);
    renderToolbar(s);
    const isHome = currentKind() === "home";
    $("messages").hidden = isHome;
    $("home").hidden = !isHome;
    $("composer-area").hidden = isHome;
    if (isHome) renderHome(s.home);
    else renderMessages(s);
    renderModal(s.modal);
    ensureHome();
  }

  // Tell the backend the Home entry was opened (once per user and visit).
  function ensureHome() {
    if (currentKind() !== "home" || !S.user || S.homeSentFor === S.user) return false;
    S.homeSentFor = S.user;
    S.homeAnswer = null;
    const user = S.user;
    act({ type: "home", user }).then((res) => {
      if (S.homeSentFor !== user) return;
      S.homeAnswer = res.ok ? "ok" : res.error || "no answer";
      if (S.state && currentKind() === "home") renderHome(S.state.home);
    });
    return true;
  }

  function renderSidebar(users, channels) {
    const key = JSON.stringify([users, channels]);
    if (key !== S.keys.sidebar) {
      S.keys.sidebar = key;
      const sw = $("user-switcher");
      sw.replaceChildren(...users.map((u) =>
        h("option", { value: u.id }, u.name + " — " + (u.role || "user"))));
      const lists = { channel: $("channel-list"), dm: $("dm-list"), home: $("app-list") };
      for (const l of Object.values(lists)) l.replaceChildren();
      for (const c of channels) {
        const kind = lists[c.kind] ? c.kind : "channel";
        const prefix = kind === "channel" ? "#" : kind === "dm" ? "●" : "⌂";
        const item = h("button", { type: "button", class: "nav-item nav-" + kind, data: { channel: c.id } },
          h("span", { class: "nav-prefix", "aria-hidden": "true" }, prefix),
          h("span", { class: "nav-name" }, c.name));
        item.addEventListener("click", () => selectChannel(c.id));
        lists[kind].append(item);
      }
    }
    const sw = $("user-switcher");
    if (S.user && sw.value !== S.user) sw.value = S.user;
    for (const item of document.querySelectorAll("#sidebar [data-channel]")) {
      const on = item.dataset.channel === S.channel;
      item.classList.toggle("active", on);
      if (on) item.setAttribute("aria-current", "page");
      else item.removeAttribute("aria-current");
    }
  }

  function renderTitle() {
    const title = $("channel-title");
    const c = S.channelsById[S.channel];
    const kind = currentKind();
    const name = c ? c.name : S.channel || "";
    const key = JSON.stringify([kind, name]);
    if (key === S.keys.title) return;
    S.keys.title = key;
    title.replaceChildren();
    if (kind === "home") {
      title.append(h("span", { class: "title-name" }, "revbot"), h("span", { class: "title-tab" }, "Home"));
    } else if (kind === "dm") {
      title.append(h("span", { class: "title-name" }, name), h("span", { class: "app-badge" }, "APP"));
    } else {
      title.append(h("span", { class: "title-hash" }, "#"), h("span", { class: "title-name" }, name));
    }
    const composer = $("composer");
    composer.placeholder = kind === "channel"
      ? "Message #" + name + " (slash commands only, e.g. /revbot help)"
      : "Message " + name + " (slash commands only, e.g. /revbot help)";
  }

  function renderToolbar(s) {
    renderTitle();
    const f = s.features || {};
    $("add-sample-mqls").hidden = !f.sample_mqls;
    $("run-sla-sweep").hidden = !f.sla_sweep;
    $("post-digest").hidden = !f.digest;
    const notice = $("notice");
    const text = s.notice == null ? "" : String(s.notice);
    if (notice.textContent !== text) notice.textContent = text;
    notice.hidden = !text;
    notice.title = text;
  }

  function timeOf(ts) {
    const d = new Date(parseFloat(ts) * 1000);
    return isNaN(d.getTime()) ? "" : hhmm(d);
  }

  function buildMessage(msg, opts) {
    const ephemeral = !!opts.ephemeral;
    const isBot = !!msg.bot || ephemeral;
    const name = isBot ? msg.username || "revbot" : userName(msg.user) || msg.username || msg.user || "unknown";
    const cls = "message" + (opts.reply ? " reply" : "") + (ephemeral ? " ephemeral" : "") + (isBot ? " from-bot" : "");
    const el = h("div", { class: cls, data: { ts: msg.ts, ephemeralId: ephemeral ? msg.id : null, user: msg.user || null } });
    const avatar = h("div", { class: "avatar" + (isBot ? " bot" : ""), "aria-hidden": "true" }, isBot ? "rb" : initials(name));
    if (!isBot) avatar.style.background = avatarColor(msg.user || name);
    el.append(avatar);
    const body = h("div", { class: "message-body" });
    if (ephemeral) body.append(h("div", { class: "ephemeral-label" }, "👁 Only visible to you"));
    const head = h("div", { class: "message-header" }, h("span", { class: "author" }, name));
    if (isBot) head.append(h("span", { class: "app-badge" }, "APP"));
    const date = new Date(parseFloat(msg.ts) * 1000);
    head.append(h("span", { class: "time", title: isNaN(date.getTime()) ? null : date.toString() }, timeOf(msg.ts)));
    if (!ephemeral && !opts.reply && S.channel !== "home") {
      // Slack's "More actions" menu, reduced to revbot's one message shortcut.
      const shortcut = h("button", { class: "message-shortcut", type: "button", title: "Message shortcut" }, "Ask marketing about this");
      shortcut.addEventListener("click", () => {
        act({ type: "shortcut", user: S.user, channel: S.channel, message_ts: msg.ts, callback_id: "deal_support_from_message" })
          .then((res) => { if (!res.ok) showToast(res.error || "That didn't work"); });
      });
      head.append(shortcut);
    }
    body.append(head);
    const ctx = {
      surface: "message", channel: S.channel, messageTs: msg.ts, viewId: null,
      ephemeralId: ephemeral ? msg.id : null,
    };
    const content = h("div", { class: "message-content" });
    const edited = msg.edited ? h("span", { class: "edited" }, "(edited)") : null;
    if (Array.isArray(msg.blocks) && msg.blocks.length) {
      content.append(renderBlocks(msg.blocks, ctx));
      if (edited) content.append(edited);
    } else {
      const text = renderText({ type: "mrkdwn", text: msg.text || "" }, "message-text");
      if (edited) text.append(" ", edited);
      content.append(text);
    }
    body.append(content);
    for (const f of Array.isArray(msg.files) ? msg.files : []) {
      // Files are served by this same sandbox; keep only the path so the page stays same-origin.
      let src = "";
      try { src = new URL(f.url_private, location.href).pathname; } catch (e) { src = ""; }
      const title = f.title || f.name || "file";
      if (src && String(f.mimetype || "").startsWith("image/")) {
        body.append(h("figure", { class: "message-file", data: { fileId: f.id } },
          h("img", { src: src, alt: title }), h("figcaption", { text: title })));
      } else if (src) {
        body.append(h("a", { class: "message-file", href: src, target: "_blank", rel: "noopener" }, title));
      }
    }
    for (const a of Array.isArray(msg.attachments) ? msg.attachments : []) {
      const att = h("div", { class: "attachment" });
      if (a.color) att.style.borderLeftColor = /^#?[0-9a-f]{3,8}$/i.test(a.color) ? (a.color[0] === "#" ? a.color : "#" + a.color) : "";
      if (Array.isArray(a.blocks) && a.blocks.length) att.append(renderBlocks(a.blocks, ctx));
      else if (a.text || a.fallback) att.append(renderText({ type: "mrkdwn", text: a.text || a.fallback }));
      body.append(att);
    }
    const replies = Array.isArray(msg.replies) ? msg.replies : [];
    if (!opts.reply && replies.length) {
      const open = S.expanded.has(msg.ts);
      const toggle = h("button", {
        type: "button", class: "replies-toggle" + (open ? " open" : ""), "aria-expanded": open ? "true" : "false",
        data: { ts: msg.ts },
      }, replies.length + (replies.length === 1 ? " reply" : " replies"));
      toggle.addEventListener("click", () => {
        if (S.expanded.has(msg.ts)) S.expanded.delete(msg.ts);
        else S.expanded.add(msg.ts);
        if (S.state) renderMessages(S.state);
      });
      body.append(h("div", { class: "replies-bar" }, toggle));
    }
    el.append(body);
    return el;
  }

  function renderMessages(s) {
    const messages = Array.isArray(s.messages) ? s.messages : [];
    const ephemerals = Array.isArray(s.ephemerals) ? s.ephemerals : [];
    const key = JSON.stringify([S.channel, S.user, messages, ephemerals, s.users, s.channels, [...S.expanded].sort()]);
    if (key === S.keys.messages) return;
    S.keys.messages = key;
    const box = $("messages");
    const prevTop = box.scrollTop;
    const ids = messages.map((m) => "m" + m.ts).concat(ephemerals.map((e) => "e" + (e.id || e.ts)));
    const fresh = S.seenTs === null || ids.some((id) => !S.seenTs.has(id));
    S.seenTs = new Set(ids);

    const frag = document.createDocumentFragment();
    if (!messages.length && !ephemerals.length) {
      const c = S.channelsById[S.channel];
      const label = c ? (c.kind === "dm" ? c.name : "#" + c.name) : "this conversation";
      frag.append(h("div", { class: "channel-intro" },
        h("div", { class: "intro-title" }, "This is the very beginning of " + label),
        h("div", { class: "intro-text" }, "Nothing here yet. Try a slash command such as /revbot help.")));
    }
    for (const m of messages) {
      const group = h("div", { class: "message-group" });
      group.append(buildMessage(m, {}));
      if (S.expanded.has(m.ts) && Array.isArray(m.replies) && m.replies.length) {
        const thread = h("div", { class: "thread", data: { parentTs: m.ts } });
        for (const r of m.replies) thread.append(buildMessage(r, { reply: true }));
        group.append(thread);
      }
      frag.append(group);
    }
    for (const e of ephemerals) frag.append(buildMessage(e, { ephemeral: true }));
    box.replaceChildren(frag);

    if (S.scrollToBottom || fresh) {
      box.scrollTop = box.scrollHeight;
      S.pinned = true;
    } else {
      box.scrollTop = prevTop;
    }
    S.scrollToBottom = false;
  }

  function renderHome(home) {
    const key = JSON.stringify([home, S.state && S.state.users, S.user, S.homeAnswer]);
    if (key === S.keys.home) return;
    S.keys.home = key;
    const box = $("home");
    box.replaceChildren();
    if (!home || !Array.isArray(home.blocks)) {
      let text = "Loading revbot's Home…";
      if (S.homeAnswer === "ok") text = "revbot has not published a Home tab yet.";
      else if (S.homeAnswer) text = "revbot has no Home tab to show (" + S.homeAnswer + ").";
      box.append(h("div", { class: "home-empty" }, text));
      return;
    }
    const ctx = { surface: "home", channel: "home", messageTs: null, viewId: home.id || home.view_id || null, inputs: [] };
    box.append(renderBlocks(home.blocks, ctx));
  }

  /* ------------------------------------------------------------------ modal */

  function viewKey(view) {
    const copy = Object.assign({}, view);
    delete copy.state;
    delete copy.hash;
    return JSON.stringify(copy);
  }

  function removeModalDom() {
    const old = $("modal-backdrop");
    if (old) old.remove();
    document.body.classList.remove("has-modal");
  }

  function renderModal(m) {
    if (!m || !m.view) {
      if (S.modal) {
        S.modal = null;
        removeModalDom();
      }
      return;
    }
    const key = viewKey(m.view);
    const cur = S.modal;
    if (cur && cur.id === m.id && cur.key === key && $("modal-backdrop")) {
      if (!cur.submitting) applyModalErrors(Object.assign({}, cur.localErrors, m.errors || {}));
      return;
    }
    // Same view updated in place: keep what the user already entered where the input is unchanged.
    let carry = null;
    let focus = null;
    if (cur && cur.id === m.id) {
      carry = {};
      for (const i of cur.inputs) carry[i.blockId + "\u0000" + i.actionId + "\u0000" + i.type] = i.control.get();
      const a = document.activeElement;
      if (a && a.dataset && a.dataset.blockId) focus = [a.dataset.blockId, a.dataset.actionId];
    }
    removeModalDom();
    buildModal(m, key, carry, focus);
  }

  function buildModal(m, key, carry, focus) {
    const view = m.view;
    const inputs = [];
    const ctx = { surface: "modal", channel: S.channel, messageTs: null, viewId: m.id, inputs };
    const state = { id: m.id, key, inputs, submitting: false, localErrors: {} };

    const closeBtn = h("button", { type: "button", id: "modal-close", class: "modal-x", "aria-label": "Close" }, "×");
    closeBtn.addEventListener("click", closeModal);
    const header = h("div", { class: "modal-header" },
      h("h2", { id: "modal-title", class: "modal-title" }, emojify(textOf(view.title) || "revbot")), closeBtn);
    const body = h("div", { id: "modal-body", class: "modal-body" }, renderBlocks(view.blocks, ctx));
    const error = h("div", { id: "modal-error", class: "modal-error", role: "alert", hidden: true });
    const cancel = h("button", { type: "button", id: "modal-cancel", class: "btn" }, emojify(textOf(view.close) || "Cancel"));
    cancel.addEventListener("click", closeModal);
    const footer = h("div", { class: "modal-footer" }, cancel);
    if (view.submit) {
      const submit = h("button", { type: "button", id: "modal-submit", class: "btn primary" }, emojify(textOf(view.submit)));
      submit.addEventListener("click", submitModal);
      footer.append(submit);
    }
    const modal = h("div", {
      id: "modal", class: "modal", role: "dialog", "aria-modal": "true", "aria-labelledby": "modal-title",
      data: { viewId: m.id, callbackId: view.callback_id || null },
    }, header, body, error, footer);
    const backdrop = h("div", { id: "modal-backdrop", class: "modal-backdrop" }, modal);
    state.root = modal;
    S.modal = state;
    document.body.append(backdrop);
    document.body.classList.add("has-modal");

    if (carry) {
      for (const i of inputs) {
        const st = carry[i.blockId + "\u0000" + i.actionId + "\u0000" + i.type];
        if (st) i.control.set(st);
      }
    }
    applyModalErrors(m.errors || {});
    let target = null;
    if (focus) {
      target = modal.querySelector('[data-block-id="' + CSS.escape(focus[0]) + '"][data-action-id="' + CSS.escape(focus[1] || "") + '"]');
    } else if (!carry) {
      const first = inputs.find((i) => i.control.focusable);
      target = first ? first.control.focusable : null;
    }
    if (target && typeof target.focus === "function") target.focus({ preventScroll: false });
  }

  function applyModalErrors(errors) {
    const st = S.modal;
    if (!st || !st.root) return;
    const shown = new Set();
    for (const blockEl of st.root.querySelectorAll(".block-input")) {
      const id = blockEl.dataset.blockId;
      const msg = errors && Object.prototype.hasOwnProperty.call(errors, id) ? errors[id] : null;
      const box = blockEl.querySelector(":scope > .input-error");
      blockEl.classList.toggle("has-error", !!msg);
      if (box) {
        const text = msg ? String(msg) : "";
        if (box.textContent !== text) box.textContent = text;
        box.hidden = !msg;
      }
      if (msg) shown.add(id);
    }
    const rest = Object.entries(errors || {}).filter(([id]) => !shown.has(id)).map(([, v]) => String(v));
    setModalError(rest.join(" "));
  }

  function setModalError(text) {
    const box = $("modal-error");
    if (!box) return;
    if (box.textContent !== text) box.textContent = text;
    box.hidden = !text;
  }

  function collectModalValues(st) {
    const values = {};
    for (const i of st.inputs) {
      if (!values[i.blockId]) values[i.blockId] = {};
      values[i.blockId][i.actionId] = i.control.get();
    }
    return values;
  }

  async function submitModal() {
    const st = S.modal;
    if (!st || st.submitting) return;
    const values = collectModalValues(st);
    const btn = $("modal-submit");
    st.submitting = true;
    if (btn) btn.disabled = true;
    setModalError("");
    const res = await act({ type: "submit", user: S.user, view_id: st.id, values });
    st.submitting = false;
    if (btn) btn.disabled = false;
    if (S.modal !== st) return;
    const errors = res && res.errors && typeof res.errors === "object" ? res.errors : {};
    if (Object.keys(errors).length) {
      st.localErrors = errors;
      applyModalErrors(errors);
    } else {
      st.localErrors = {};
      applyModalErrors({});
      if (!res.ok) setModalError(res.error || "revbot could not take that. Try again.");
    }
  }

  function closeModal() {
    const st = S.modal;
    if (!st) return;
    S.modal = null;
    removeModalDom();
    act({ type: "close", user: S.user, view_id: st.id });
  }

  /* ------------------------------------------------------------------ navigation */

  function selectChannel(id) {
    if (id !== S.channel) {
      S.channel = id;
      S.keys.messages = null;
      S.keys.home = null;
      S.seenTs = null;
      S.scrollToBottom = true;
      hideSuggestions();
      setHint("");
      $("messages").replaceChildren();
      $("home").replaceChildren();
    }
    S.epoch++;
    renderSidebar((S.state && S.state.users) || [], (S.state && S.state.channels) || []);
    renderTitle();
    const isHome = currentKind() === "home";
    $("messages").hidden = isHome;
    $("home").hidden = !isHome;
    $("composer-area").hidden = isHome;
    syncUrl();
    S.homeSentFor = null;
    if (!ensureHome()) refresh();
  }

  function switchUser(id) {
    if (!id || id === S.user) return;
    S.user = id;
    S.keys.messages = null;
    S.keys.home = null;
    S.seenTs = null;
    S.scrollToBottom = true;
    if (S.modal) {
      S.modal = null;
      removeModalDom();
    }
    S.epoch++;
    syncUrl();
    S.homeSentFor = null;
    if (!ensureHome()) refresh();
  }

  /* ------------------------------------------------------------------ composer */

  function setHint(text, isError) {
    const hint = $("composer-hint");
    hint.textContent = text || "";
    hint.classList.toggle("error", !!isError);
  }

  function hideSuggestions() {
    const list = $("command-suggestions");
    list.hidden = true;
    list.replaceChildren();
    S.suggestion = -1;
  }

  function matchingCommands() {
    const value = $("composer").value;
    if (!value.startsWith("/") || /\s/.test(value)) return [];
    const cmds = (S.state && Array.isArray(S.state.commands)) ? S.state.commands : [];
    const typed = value.toLowerCase();
    return cmds.filter((c) => String(c).toLowerCase().startsWith(typed));
  }

  function updateSuggestions() {
    const list = $("command-suggestions");
    const cmds = matchingCommands();
    if (!cmds.length) {
      hideSuggestions();
      return;
    }
    if (S.suggestion >= cmds.length) S.suggestion = -1;
    list.replaceChildren(...cmds.map((c, i) => {
      const li = h("li", { class: "command-suggestion" + (i === S.suggestion ? " active" : ""), role: "option", data: { command: c } },
        h("span", { class: "command-name" }, c), h("span", { class: "command-app" }, "revbot"));
      li.addEventListener("mousedown", (ev) => {
        ev.preventDefault();
        completeCommand(c);
      });
      return li;
    }));
    list.hidden = false;
  }

  function completeCommand(c) {
    const input = $("composer");
    input.value = c + " ";
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
    hideSuggestions();
  }

  async function sendComposer() {
    const input = $("composer");
    const text = input.value.trim();
    if (!text) return;
    if (!text.startsWith("/")) {
      setHint(SLASH_ONLY_HINT);
      return;
    }
    input.value = "";
    hideSuggestions();
    setHint("");
    const res = await act({ type: "command", user: S.user, channel: S.channel, text });
    if (!res.ok) {
      setHint(res.error || "revbot could not run " + text.split(/\s/)[0], true);
      if (!input.value) input.value = text;
    }
  }

  function setupComposer() {
    const input = $("composer");
    input.addEventListener("input", () => {
      setHint("");
      S.suggestion = -1;
      updateSuggestions();
    });
    input.addEventListener("keydown", (ev) => {
      const list = $("command-suggestions");
      const open = !list.hidden;
      if (open && (ev.key === "ArrowDown" || ev.key === "ArrowUp")) {
        ev.preventDefault();
        const n = matchingCommands().length;
        if (!n) return;
        S.suggestion = ev.key === "ArrowDown" ? (S.suggestion + 1) % n : (S.suggestion <= 0 ? n - 1 : S.suggestion - 1);
        updateSuggestions();
        return;
      }
      if (open && ev.key === "Tab") {
        ev.preventDefault();
        const cmds = matchingCommands();
        completeCommand(cmds[Math.max(S.suggestion, 0)]);
        return;
      }
      if (open && ev.key === "Escape") {
        ev.preventDefault();
        ev.stopPropagation();
        hideSuggestions();
        return;
      }
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        if (open && S.suggestion >= 0) {
          completeCommand(matchingCommands()[S.suggestion]);
          return;
        }
        sendComposer();
      }
    });
    input.addEventListener("blur", () => setTimeout(hideSuggestions, 100));
    input.addEventListener("focus", updateSuggestions);
    $("composer-send").addEventListener("click", sendComposer);
  }

  /* ------------------------------------------------------------------ start */

  function setupToolbar() {
    const buttons = [["add-sample-mqls", "sample_mqls"], ["run-sla-sweep", "sla_sweep"], ["post-digest", "digest"]];
    for (const [id, type] of buttons) {
      const btn = $(id);
      btn.addEventListener("click", () => {
        btn.disabled = true;
        act({ type }).then((res) => {
          btn.disabled = false;
          if (!res.ok) showToast(res.error || "That didn't work");
        });
      });
    }
  }

  function start() {
    const params = new URLSearchParams(window.location.search);
    S.user = params.get("user") || null;
    S.channel = params.get("channel") || null;
    $("user-switcher").addEventListener("change", (ev) => switchUser(ev.target.value));
    setupToolbar();
    setupComposer();
    const box = $("messages");
    box.addEventListener("scroll", () => {
      S.pinned = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    });
    document.addEventListener("click", (ev) => {
      if (!ev.target.closest || !ev.target.closest(".bk-overflow")) closeMenus();
    });
    document.addEventListener("keydown", (ev) => {
      if (ev.key !== "Escape" || ev.defaultPrevented) return;
      if (closeMenus()) return;
      if (S.modal) {
        ev.preventDefault();
        closeModal();
      }
    });
    pollLoop();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
