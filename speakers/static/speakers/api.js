// The service's HTTP API with the key a person typed in, and its refusals in plain words.

export class ApiError extends Error {
  constructor(status, code, message, detail) {
    super(message);
    this.status = status; this.code = code; this.detail = detail || {};
  }
}

export class Api {
  constructor(getKey) { this.getKey = getKey; }

  /** `request("POST", "/api/v1/verify", {form: FormData})` or `{json: {...}}` -> parsed JSON; throws ApiError. */
  async request(method, path, { json, form } = {}) {
    const key = this.getKey();
    if (!key) throw new ApiError(401, "missing_api_key", "Enter an API key first.", {});
    const headers = { "X-API-Key": key, Accept: "application/json" };
    let body;
    if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
    if (form !== undefined) body = form;
    let response;
    try {
      response = await fetch(path, { method, headers, body, credentials: "omit", cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, "network_error", "The server cannot be reached.", {});
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!response.ok) {
      const error = data && data.error;
      if (error) throw new ApiError(response.status, error.code, error.message, error.detail);
      throw new ApiError(response.status, `http_${response.status}`, `The server answered ${response.status}.`, {});
    }
    return data;
  }
}

/** {headline, advice, message} for an ApiError (or a refusal's {code, message}), with the plain words of `words`. */
export function describe(error, words) {
  const known = words[error.code];
  if (known) return { headline: known.headline, advice: known.advice, message: error.message };
  if (error.code === "network_error") return { headline: "No connection", advice: "The server cannot be reached.", message: "" };
  return { headline: "Refused", advice: error.message || String(error), message: "" };
}

/** A small DOM element saying what went wrong, in plain words, with the API's message below. */
export function refusalElement(error, words, prefix = "") {
  const { headline, advice, message } = describe(error, words);
  const box = document.createElement("div");
  box.className = "refusal";
  box.dataset.code = error.code || "";
  const strong = document.createElement("strong");
  strong.textContent = prefix + headline;
  box.append(strong, document.createTextNode(advice));
  if (message && message !== advice) {
    const small = document.createElement("div");
    small.className = "hint";
    small.textContent = message;
    box.append(small);
  }
  return box;
}

/** Why identify named nobody (`no_match_reason`), in plain words. */
export const NO_MATCH = {
  no_candidates: "nobody is enrolled yet", below_threshold: "no enrolled voice scores above the threshold",
  ambiguous: "two enrolled voices score too close to tell apart",
};

/** A number as the API gave it, rounded for reading (never rescaled). */
export function fmt(value, digits = 3) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
}
