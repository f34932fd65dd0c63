/**
 * The console's shell: who is signed in, the navigation, the IdP banner, and the page for the
 * path. Pages: Now (who holds what right now), Request, a grant (the alarm links' target),
 * Reviews, Posture, Drills, Audit, Roles, Factors. The navigation offers only the pages the
 * viewer may use: Audit to admins, Factors where the broker has local factors and the viewer is
 * signed in through the IdP, and to a login via local fallback only what it may do.
 */
import { useCallback, useEffect, useState } from "react";
import { ApiError, api, type IdpHealth, type Me, type SessionView, tokenLogin } from "./api.js";
import { AuditPage } from "./pages/Audit.js";
import { DrillsPage } from "./pages/Drills.js";
import { FactorsPage } from "./pages/Factors.js";
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

interface NavItem {
  readonly path: string;
  readonly label: string;
  /** Open to a login via local fallback (the API's own allowance for it). */
  readonly fallback?: boolean;
  readonly show?: (me: Me, session: SessionView | null) => boolean;
}

const NAV: readonly NavItem[] = [
  { path: "/", label: "Now", fallback: true },
  { path: "/request", label: "Request", fallback: true },
  { path: "/reviews", label: "Reviews" },
  { path: "/posture", label: "Posture" },
  { path: "/drills", label: "Drills" },
  { path: "/audit", label: "Audit", show: (me) => me.admin },
  { path: "/roles", label: "Roles", fallback: true },
  {
    path: "/factors",
    label: "Factors",
    show: (_me, s) => s?.features.localFactors === true && s.method === "oidc",
  },
];

/** The pages this viewer may use. */
function navFor(me: Me, session: SessionView | null): readonly NavItem[] {
  return NAV.filter(
    (n) => (session?.method !== "fallback" || n.fallback === true) && (n.show === undefined || n.show(me, session)),
  );
}

export function App() {
  const path = usePath();
  const [me, setMe] = useState<Me | null>(null);
  const [session, setSession] = useState<SessionView | null>(null);
  const [signedOut, setSignedOut] = useState(false);
  const [idp, setIdp] = useState<IdpHealth | null>(null);
  const [error, setError] = useState<unknown>(null);

  const load = useCallback(() => {
    api
      .session()
      .then((s) => Promise.all([s, api.me()]))
      .then(
        ([s, m]) => {
          setSession(s);
          setMe(m);
          setSignedOut(false);
          setError(null);
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
    const page = NAV.find((n) => n.path === path)?.label ?? (path.startsWith("/grants/") ? "Grant" : "Breakglass");
    document.title = `${page} — Breakglass`;
  }, [path]);

  const signOut = async () => {
    if (tokenLogin.get()) tokenLogin.clear();
    else await api.logout().catch(() => {});
    setMe(null);
    setSession(null);
    setSignedOut(true);
    navigate("/");
  };

  const [failing, setFailing] = useState<{ channel: string; lastError: string | null }[]>([]);
  const fallback = session?.method === "fallback";
  useEffect(() => {
    // A login via local fallback may not read the channels' health (it only requests and uses grants).
    if (!me || fallback) return;
    const check = () =>
      api.channels().then(
        (c) => setFailing(c.channels.filter((x) => x.failing)),
        () => {},
      );
    check();
    const t = setInterval(check, 30_000);
    return () => clearInterval(t);
  }, [me, fallback]);
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

  const nav = me ? navFor(me, session) : [];
  let page = <p>Not found.</p>;
  if (me) {
    const offered = nav.some((n) => n.path === path);
    if (path.startsWith("/grants/")) {
      page = <GrantPage id={decodeURIComponent(path.slice(8))} me={me} storyAllowed={!fallback} />;
    } else if (!offered && NAV.some((n) => n.path === path)) {
      page = <p>This page is not for you here ({fallback ? "a login via local fallback" : "your sign-in"}).</p>;
    } else if (path === "/") page = <NowPage me={me} />;
    else if (path === "/request") page = <RequestPage />;
    else if (path === "/reviews") page = <ReviewsPage />;
    else if (path === "/posture") page = <PosturePage />;
    else if (path === "/drills") page = <DrillsPage me={me} />;
    else if (path === "/audit") page = <AuditPage me={me} />;
    else if (path === "/roles") page = <RolesPage />;
    else if (path === "/factors") page = <FactorsPage />;
  }
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Breakglass</span>
        <nav aria-label="Main">
          {nav.map((n) => (
            <Link key={n.path} to={n.path} aria-current={path === n.path ? "page" : undefined}>
              {n.label}
            </Link>
          ))}
        </nav>
        {me ? (
          <span className="who">
            <span title={me.groups.join(", ")}>{me.displayName}</span>
            {fallback ? <span className="chip bad">fallback login</span> : null}
            <button type="button" className="link" onClick={signOut}>
              Sign out
            </button>
          </span>
        ) : null}
      </header>
      <StepUpDialog
        user={me?.user ?? ""}
        enabled={session?.features.localFactors === true && session.method !== "token"}
      />
      <main id="main">
        {banner}
        {channelBanner}
        <ErrorBox error={error} />
        {page}
      </main>
    </div>
  );
}
