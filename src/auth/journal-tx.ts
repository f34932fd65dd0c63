/**
 * What a transaction must offer for the audit journal to append in it, as the journal declares it.
 * The auth parts ask for this plus their own write ports (`Transactions<SessionWrites & JournalTx>`),
 * so they follow the journal's port when it narrows instead of naming the whole store.
 */
import type { AuditAppender } from "../audit/audit-journal.js";

export type JournalTx = Parameters<AuditAppender["append"]>[0];
