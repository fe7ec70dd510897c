// Client-side routes are paths under the UI's base (ui/tokens, ui/admin/rules?...). The gateway
// answers any such path with index.html, so a reload or a shared link opens the same page.
import { useEffect, useState } from "preact/hooks";
import { uiBase } from "./api";

export interface Location {
  route: string;
  query: URLSearchParams;
}

function current(): Location {
  const base = uiBase.pathname;
  const path = location.pathname.startsWith(base) ? location.pathname.slice(base.length) : "";
  return { route: decodeURIComponent(path.replace(/\/$/, "")), query: new URLSearchParams(location.search) };
}

const listeners = new Set<() => void>();

export function navigate(route: string, query?: URLSearchParams, replace = false): void {
  const url = new URL(route, uiBase);
  if (query) url.search = query.toString();
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  listeners.forEach((listener) => listener());
}

export function useLocation(): Location {
  const [where, setWhere] = useState(current);
  useEffect(() => {
    const update = () => setWhere(current());
    listeners.add(update);
    addEventListener("popstate", update);
    return () => {
      listeners.delete(update);
      removeEventListener("popstate", update);
    };
  }, []);
  return where;
}

/** Same-origin links under the UI open without a page load; others (new tab, modifiers) as usual. */
export function interceptLinks(event: MouseEvent): void {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  const anchor = (event.target as Element).closest?.("a");
  if (!anchor || anchor.target || anchor.hasAttribute("download")) return;
  const fragment = anchor.getAttribute("href") ?? "";
  if (fragment.startsWith("#")) {
    // An in-page link (the skip link): focus its target, as the browser would, without a route change.
    event.preventDefault();
    document.getElementById(fragment.slice(1))?.focus();
    return;
  }
  const url = new URL(anchor.href);
  if (url.origin !== uiBase.origin || !url.pathname.startsWith(uiBase.pathname)) return;
  event.preventDefault();
  navigate(url.pathname.slice(uiBase.pathname.length), url.searchParams);
}
