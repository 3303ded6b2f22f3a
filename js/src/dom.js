// Tiny DOM helpers: no framework, no innerHTML with data (text only, so nothing is evaluated).

/**
 * Create an element. `attrs` keys: class, text, on<Event> (listener), aria-*, data-*, and
 * any property or attribute; children are nodes or strings (added as text).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key.includes("-") || key === "role" || key === "for") {
      el.setAttribute(key, value === true ? "" : String(value));
    } else el[key] = value;
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return el;
}

/** Set text only when it differs (avoids layout work on every frame). */
export function setText(el, text) {
  const value = text === undefined || text === null ? "" : String(text);
  if (el.textContent !== value) el.textContent = value;
}

/**
 * Set a property (disabled, hidden, value, checked, title...) only when it differs: a write,
 * even of the same value, invalidates style, and the parts update ten times a second.
 */
export function setProp(el, key, value) {
  if (el[key] !== value) el[key] = value;
}

/** Set `data-<key>` only when it differs (attribute selectors restyle on every write). */
export function setData(el, key, value) {
  if (el.dataset[key] !== value) el.dataset[key] = value;
}

/**
 * Set the filled share of a bar drawn as a gradient's stop (`--lw-frac`, 0 to 1, as text),
 * only when it differs. A bar that moves by a transform or a width makes the browser lay out
 * or layerize the whole page again; a gradient's stop only repaints the bar.
 */
export function setFraction(el, frac) {
  if (el.style.getPropertyValue("--lw-frac") !== frac) el.style.setProperty("--lw-frac", frac);
}

let counter = 0;
/** A page-unique id for label/for pairs. */
export function uid(prefix) {
  counter += 1;
  return `lw-${prefix}-${counter}-${Math.random().toString(36).slice(2, 7)}`;
}
