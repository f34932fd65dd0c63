/** Small shared pieces: error banner, loading, status chips, async data hook. */
import { type ReactNode, useCallback, useEffect, useState } from "react";
import { ApiError } from "./api.js";

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const text = error instanceof ApiError ? `${error.message} (${error.code})` : String(error);
  return (
    <div className="banner bad" role="alert">
      {text}
    </div>
  );
}

export function Chip({ tone, children }: { tone: "ok" | "bad" | "warn" | "info"; children: ReactNode }) {
  return <span className={`chip ${tone}`}>{children}</span>;
}

/** Load something, with reload; loads again when `key` changes; keeps the last value meanwhile. */
export function useData<T>(load: () => Promise<T>, key = "") {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  // biome-ignore lint/correctness/useExhaustiveDependencies: `key` names what the load depends on
  const reload = useCallback(() => {
    load().then(
      (d) => {
        setData(d);
        setError(null);
      },
      (e: unknown) => setError(e),
    );
  }, [key]);
  useEffect(() => reload(), [reload]);
  return { data, error, reload };
}

/** A number of seconds that counts down every second from `initial` (re-based when it changes). */
export function useCountdown(initial: number | null): number | null {
  const [left, setLeft] = useState(initial);
  useEffect(() => {
    setLeft(initial);
    if (initial === null) return;
    const started = Date.now();
    const t = setInterval(() => setLeft(Math.max(0, initial - Math.floor((Date.now() - started) / 1000))), 1000);
    return () => clearInterval(t);
  }, [initial]);
  return left;
}

/**
 * A table with column headers. On a narrow screen it scrolls inside its box; with `stack`, each
 * row becomes a card of "header: value" lines instead (the cells carry `data-label`), so the
 * columns that matter are seen without scrolling sideways.
 */
export function Table({
  head,
  children,
  stack = false,
}: {
  head: readonly string[];
  children: ReactNode;
  stack?: boolean;
}) {
  // A box that may scroll sideways must be reachable by keyboard to scroll it.
  const scrollable = stack ? {} : { tabIndex: 0, role: "region", "aria-label": `Table: ${head.join(", ")}` };
  return (
    <div className="scroll" {...scrollable}>
      <table className={stack ? "stack" : undefined}>
        <thead>
          <tr>
            {head.map((h, i) => (
              <th key={h || `c${i}`} scope="col">
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}
