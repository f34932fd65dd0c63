/**
 * The console's shell: who is signed in, the navigation, the IdP banner, and the page for the
 * path. Pages: Now (who holds what right now), Request, a grant (the alarm links' target),
 * Reviews, Posture, Audit, Roles.
 */
import { useCallback, useEffect, useState } from "react";
import { ApiError, api, type IdpHealth, type Me, tokenLogin } from "./api.js";
import { AuditPage } from "./pages/Audit.js";
import { DrillsPage } from "./pages/Drills.js";
import { GrantPage } from "./pages/Grant.js";
import { Login } from "./pages/Login.js";
import { NowPage } from "./pages/Now.js";
import { PosturePage } from "./pages/Posture.js";
import { RequestPage } from "./pages/Request.js";
import { ReviewsPage } from "./pages/Reviews.js";
import { RolesPage } from "./pages/Roles.js";
import { Link, navigate, usePath } from "./router.js";
import { StepUpDialog } from "./StepUp.js";
import { ErrorBox } from "./ui.js";

const NAV: readonly [string, string][] = [
  ["/", "Now"],
  ["/request", "Request"],
  ["/reviews", "Reviews"],
  ["/posture", "Posture"],
  ["/drills", "Drills"],
  ["/audit", "Audit"],
  ["/roles", "Roles"],
];

export function App() {
  const path = usePath();
  const [me, setMe] = useState<Me | null>(null);
  const [signedOut, setSignedOut] = useState(false);
  const [idp, setIdp] = useState<IdpHealth | null>(null);
  const [error, setError] = useState<unknown>(null);

  const load = useCallback(() => {
    api
      .session()
      .then(() => api.me())
      .then(
        (m) => {
          setMe(m);
          setSignedOut(false);
        },
        (e: unknown) => {
          if (e instanceof ApiError && e.status === 401) {
            tokenLogin.clear();
            setSignedOut(true);
          } else setError(e);
        },
      );
  }, []);
  useEffect(() => {
    load();
    api.idp().then(setIdp, () => setIdp(null));
  }, [load]);

  useEffect(() => {
    const page = NAV.find(([p]) => p === path)?.[1] ?? (path.startsWith("/grants/") ? "Grant" : "Breakglass");
    document.title = `${page} — Breakglass`;
  }, [path]);

  const signOut = async () => {
    if (tokenLogin.get()) tokenLogin.clear();
    else await api.logout().catch(() => {});
    setMe(null);
    setSignedOut(true);
    navigate("/");
  };

  const [failing, setFailing] = useState<{ channel: string; lastError: string | null }[]>([]);
  useEffect(() => {
    if (!me) return;
    const check = () =>
      api.channels().then(
        (c) => setFailing(c.channels.filter((x) => x.failing)),
        () => {},
      );
    check();
    const t = setInterval(check, 30_000);
    return () => clearInterval(t);
  }, [me]);
  const channelBanner =
    failing.length > 0 ? (
      <div className="banner bad" role="alert">
        {failing.map((f) => (
          <div key={f.channel}>
            Alarm channel {f.channel} is failing{f.lastError ? ` (${f.lastError})` : ""}: alarms routed only there are
            not reaching anyone.
          </div>
        ))}
      </div>
    ) : null;

  const banner =
    idp?.configured && !idp.reachable ? (
      <div className="banner bad" role="alert">
        The identity provider is {idp.declaredDown ? `declared down by ${idp.declaredDown.by}` : "unreachable"}
        {idp.fallbackOpen ? ": local fallback login is open (it pages security)." : "."}
      </div>
    ) : null;

  if (signedOut || (!me && !error)) {
    return (
      <div className="shell">
        <header className="top">
          <span className="brand">Breakglass</span>
        </header>
        <main id="main">
          {banner}
          {signedOut ? <Login idp={idp} onSignedIn={load} /> : <p aria-busy="true">Loading…</p>}
        </main>
      </div>
    );
  }

  let page = <p>Not found.</p>;
  if (me) {
    if (path === "/") page = <NowPage me={me} />;
    else if (path === "/request") page = <RequestPage />;
    else if (path.startsWith("/grants/")) page = <GrantPage id={decodeURIComponent(path.slice(8))} me={me} />;
    else if (path === "/reviews") page = <ReviewsPage />;
    else if (path === "/posture") page = <PosturePage />;
    else if (path === "/drills") page = <DrillsPage me={me} />;
    else if (path === "/audit") page = <AuditPage me={me} />;
    else if (path === "/roles") page = <RolesPage />;
  }
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Breakglass</span>
        <nav aria-label="Main">
          {NAV.map(([to, label]) => (
            <Link key={to} to={to} aria-current={path === to ? "page" : undefined}>
              {label}
            </Link>
          ))}
        </nav>
        {me ? (
          <span className="who">
            <span title={me.groups.join(", ")}>{me.displayName}</span>
            <button type="button" className="link" onClick={signOut}>
              Sign out
            </button>
          </span>
        ) : null}
      </header>
      <StepUpDialog />
      <main id="main">
        {banner}
        {channelBanner}
        <ErrorBox error={error} />
        {page}
      </main>
    </div>
  );
}
