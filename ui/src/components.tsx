import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { ApiError, download, type Query } from "./api";

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  reload: () => void;
}

/** Runs ``load`` when ``key`` changes; the answer of a superseded run is dropped. */
export function useLoad<T>(load: () => Promise<T>, key: string = ""): Loaded<T> {
  const [state, setState] = useState<{ data: T | null; error: string | null; loading: boolean }>({
    data: null,
    error: null,
    loading: true,
  });
  const [round, setRound] = useState(0);
  useEffect(() => {
    let current = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => current && setState({ data, error: null, loading: false }),
      (err: unknown) => current && setState({ data: null, error: messageOf(err), loading: false }),
    );
    return () => {
      current = false;
    };
  }, [key, round]);
  const reload = useCallback(() => setRound((r) => r + 1), []);
  return { ...state, reload };
}

export function messageOf(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

export function ErrorText({ error }: { error: string | null }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error}
    </p>
  );
}

export function Status<T>({ loaded, children }: { loaded: Loaded<T>; children: (data: T) => ComponentChildren }) {
  if (loaded.error) return <ErrorText error={loaded.error} />;
  if (loaded.data === null) return <p aria-busy="true">Loading…</p>;
  return <>{children(loaded.data)}</>;
}

export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    await navigator.clipboard.writeText(text);
    setDone(true);
    setTimeout(() => setDone(false), 2000);
  };
  return (
    <button type="button" onClick={copy}>
      {done ? "Copied" : label}
    </button>
  );
}

export const usd = (value: number | null | undefined) =>
  value === null || value === undefined ? "—" : `$${value.toFixed(value !== 0 && Math.abs(value) < 0.01 ? 4 : 2)}`;

export const when = (value: string | null | undefined) => (value ? new Date(value).toLocaleString() : "—");

export const count = (value: number | null | undefined) => (value ?? 0).toLocaleString();

/** An API error names the field it is about (``param``): shown next to the editor it concerns. */
export function FieldError({ error }: { error: Error | null }) {
  if (!error) return null;
  const where = error instanceof ApiError && error.param ? `${error.param}: ` : "";
  return (
    <p class="error" role="alert">
      {where}
      {error.message}
    </p>
  );
}

export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${what} is not valid JSON: ${messageOf(err)}`);
  }
}

export const asError = (err: unknown) => (err instanceof Error ? err : new Error(String(err)));

/** Downloads an export the server builds for ``query`` (the page's filters): all the rows, not
 * the ones the page happens to show. A refusal is shown beside the button. */
export function ExportButton({ path, query, filename, label }: { path: string; query: Query; filename: string; label: string }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const run = async () => {
    setError(null);
    setBusy(true);
    try {
      await download(path, query, filename);
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" onClick={run} disabled={busy} aria-busy={busy ? "true" : undefined}>
        {label}
      </button>
      <ErrorText error={error} />
    </>
  );
}

/** The row under a table row that one of its buttons (``aria-expanded``) opened. Escape anywhere
 * inside closes it and puts the focus back on that button, so a keyboard user is not left on
 * nothing (the focused control inside is gone). */
export function OpenedRow({ colSpan, onClose, children }: { colSpan: number; onClose: () => void; children: ComponentChildren }) {
  const onKeyDown = (event: KeyboardEvent) => {
    if (event.key !== "Escape" || event.defaultPrevented) return;
    const opener = (event.currentTarget as HTMLElement).previousElementSibling?.querySelector<HTMLElement>("[aria-expanded=true]");
    event.preventDefault();
    onClose();
    opener?.focus();
  };
  return (
    <tr class="opened" onKeyDown={onKeyDown}>
      <td colSpan={colSpan}>{children}</td>
    </tr>
  );
}
