/**
 * Renamed grant-transitions.ts (issue 21); this keeps access-controller.ts and grant-service.ts,
 * which another branch is changing, building until they import the new names.
 */
export { type AuditAppender, stamp } from "../audit/audit-journal.js";
export { commitTransition, createGrantWriter, type GrantWriter } from "./grant-transitions.js";
