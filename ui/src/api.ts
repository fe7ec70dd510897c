// The public API, reached relative to the page: the UI lives at <gateway>/ui/, so the gateway's
// base is the <base> one level up. Works under any reverse-proxy prefix without configuration.
// The session is per tab (sessionStorage) and travels in the Authorization header, never in a
// cookie, so no other site can make the browser send it (CSRF).

export const uiBase = new URL(".", document.baseURI);
export const gatewayBase = new URL("..", uiBase);

const ACCESS = "waypost.access_token";
const REFRESH = "waypost.refresh_token";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

export function gatewayUrl(path: string): URL {
  return new URL(path.replace(/^\//, ""), gatewayBase);
}

export function accessToken(): string | null {
  return sessionStorage.getItem(ACCESS);
}

export function saveSession(access: string, refresh: string | null): void {
  sessionStorage.setItem(ACCESS, access);
  if (refresh) sessionStorage.setItem(REFRESH, refresh);
}

export function clearSession(): void {
  sessionStorage.removeItem(ACCESS);
  sessionStorage.removeItem(REFRESH);
}

export type Query = Record<string, string | number | string[] | null | undefined>;

function withQuery(path: string, query?: Query): URL {
  const url = gatewayUrl(path);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === null || value === undefined || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(one));
  }
  return url;
}

async function send(method: string, url: URL, body: unknown, token: string | null): Promise<Response> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  return fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
  });
}

async function errorOf(response: Response): Promise<ApiError> {
  try {
    const body = await response.json();
    const error = body?.error ?? body;
    const message = typeof error?.message === "string" ? error.message : response.statusText;
    return new ApiError(response.status, message, typeof error?.param === "string" ? error.param : null);
  } catch {
    return new ApiError(response.status, `${response.status} ${response.statusText}`);
  }
}

let refreshing: Promise<boolean> | null = null;

/** Trade the refresh token for a new pair once, however many requests found the token expired. */
async function refresh(): Promise<boolean> {
  const token = sessionStorage.getItem(REFRESH);
  if (!token) return false;
  refreshing ??= (async () => {
    const response = await send("POST", gatewayUrl("/auth/refresh"), { refresh_token: token }, null);
    if (!response.ok) return false;
    const pair = await response.json();
    saveSession(pair.access_token, pair.refresh_token);
    return true;
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

export const onSignedOut: { listener: (() => void) | null } = { listener: null };

export async function request<T>(method: string, path: string, body?: unknown, query?: Query): Promise<T> {
  const url = withQuery(path, query);
  let response = await send(method, url, body, accessToken());
  if (response.status === 401 && accessToken() && (await refresh())) {
    response = await send(method, url, body, accessToken());
  }
  if (response.status === 401 && accessToken()) {
    clearSession();
    onSignedOut.listener?.();
  }
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export const get = <T>(path: string, query?: Query) => request<T>("GET", path, undefined, query);
export const post = <T>(path: string, body?: unknown) => request<T>("POST", path, body ?? {});
export const patch = <T>(path: string, body: unknown) => request<T>("PATCH", path, body);
export const del = (path: string) => request<void>("DELETE", path);

export async function logOut(): Promise<void> {
  const token = sessionStorage.getItem(REFRESH);
  clearSession();
  if (token) await send("POST", gatewayUrl("/auth/logout"), { refresh_token: token }, null).catch(() => {});
}

/** Tokens handed back by single sign-on in the URL fragment: kept, then removed from the address. */
export function takeFragmentTokens(): boolean {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const access = fragment.get("access_token");
  if (!access) return false;
  saveSession(access, fragment.get("refresh_token"));
  history.replaceState(null, "", location.pathname + location.search);
  return true;
}

export interface User {
  id: number;
  email: string;
  display_name: string;
  role: string;
  active: boolean;
  groups: string[];
  created_at: string;
  last_login_at: string | null;
  permissions?: string[];
}

export interface Token {
  id: number;
  name: string;
  prefix: string;
  user_id: number;
  models: string[] | null;
  expires_at: string | null;
  last_used_at: string | null;
  created_at: string;
  token?: string;
}

export interface List<T> {
  data: T[];
}

export const pathPart = (value: string | number) => encodeURIComponent(String(value));

/** A file the gateway makes (a CSV export), fetched with the session's token (never a cookie)
 * and handed to the browser as a download. */
export async function download(path: string, query: Query, filename: string): Promise<void> {
  const url = withQuery(path, query);
  let response = await send("GET", url, undefined, accessToken());
  if (response.status === 401 && accessToken() && (await refresh())) {
    response = await send("GET", url, undefined, accessToken());
  }
  if (!response.ok) throw await errorOf(response);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}
