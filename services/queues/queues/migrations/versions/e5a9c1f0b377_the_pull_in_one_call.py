"""the next-account pull in one call: queues.next_account() and its two steps

The pull was six to eight round trips from the service (the agent's lock, letting go of
an unworkable lease, the held lease and the agent's queues, candidates of the agent's own
then nobody's, the lease): the service spent its time waiting and dispatching them, and
held a pooled connection for all of them. The same statements now run in PL/pgSQL, one
call per pull. A VOLATILE function takes a fresh snapshot for each statement, so the
lease still checks its candidate with a snapshot newer than the one it was claimed with.

The contact policy is written out as ``queues.working._READY_FACTS`` compiles it from
``recaudo_common.contact_policy``; a test compares the installed functions with it, so a
change of the policy needs a migration replacing these functions.

Revision ID: e5a9c1f0b377
Revises: c4e1a7d2f903
Create Date: 2026-12-08 00:10:00.000000
"""
from alembic import op

revision = 'e5a9c1f0b377'
down_revision = 'c4e1a7d2f903'
branch_labels = None
depends_on = None

#: the facts that let an account be handed out now (``f``, its institution's rules ``r``)
READY = ("NOT f.open_dispute AND (f.callback_at IS NULL OR f.callback_at <= now()) "
         "AND (f.contact_hold_until IS NULL OR f.contact_hold_until <= now()) "
         "AND NOT f.do_not_contact AND CAST(timezone(coalesce(coalesce(f.time_zone, "
         "r.time_zone), 'America/Mexico_City'), now()) AS TIME WITHOUT TIME ZONE) BETWEEN "
         "coalesce(r.contact_from, '07:00:00'::time) AND coalesce(r.contact_until, "
         "'22:00:00'::time)")
FREE = ("NOT EXISTS (SELECT 1 FROM queues.leases l WHERE l.account_id = a.account_id "
        "AND l.expires_at > now())")
IN_SCOPE = "(p_all OR a.institution_id = ANY(p_institutions))"
IN_FORCE = ("(s.state = 'active' OR EXISTS (SELECT 1 FROM queues.strategies c "
            "WHERE c.challenger_id = s.id AND c.state = 'active'))")
ANSWER = ("account_id bigint, debtor_id bigint, queue_id integer, queue text, rank integer, "
          "lease_expires_at timestamptz")


def candidates(owner: str) -> str:
    return f"""
        SELECT a.account_id FROM queues.assignments a
        JOIN queues.account_facts f ON f.account_id = a.account_id
        LEFT JOIN queues.institution_rules r ON r.institution_id = f.institution_id
        WHERE a.queue_id = p_queue AND {owner} AND a.resting_until IS NULL AND {IN_SCOPE}
          AND {READY} AND {FREE}
        ORDER BY a.rank LIMIT p_window
        FOR UPDATE OF a SKIP LOCKED"""


PULL_CANDIDATES = f"""
CREATE FUNCTION queues.pull_candidates(p_agent integer, p_all boolean, p_institutions integer[],
                                       p_queue integer, p_own boolean, p_window integer)
RETURNS bigint[] LANGUAGE plpgsql VOLATILE AS $pull$
-- A queue's first free ready accounts of one owner (the agent's own, or nobody's), walked
-- in rank order on the partial index of ready rows and claimed with SKIP LOCKED.
BEGIN
    IF p_own THEN
        RETURN ARRAY({candidates("a.agent_id = p_agent")});
    END IF;
    RETURN ARRAY({candidates("a.agent_id IS NULL")});
END $pull$"""

PULL_TAKE = f"""
CREATE FUNCTION queues.pull_take(p_agent integer, p_all boolean, p_institutions integer[],
                                 p_candidates bigint[], p_minutes integer)
RETURNS TABLE ({ANSWER}) LANGUAGE plpgsql VOLATILE AS $pull$
#variable_conflict use_column
-- The first claimed candidate that, seen by this statement's (newer) snapshot, still
-- qualifies is leased (the primary key of leases refusing a live lease), logged as pulled
-- and described.
BEGIN
    RETURN QUERY
    WITH still AS (
        SELECT a.account_id, a.queue_id, a.rank, f.debtor_id, q.name AS queue
        FROM queues.assignments a
        JOIN queues.account_facts f ON f.account_id = a.account_id
        JOIN queues.queues q ON q.id = a.queue_id
        JOIN queues.strategies s ON s.id = q.strategy_id
        JOIN queues.team_members m ON m.team_id = q.team_id AND m.agent_id = p_agent
        LEFT JOIN queues.institution_rules r ON r.institution_id = f.institution_id
        WHERE a.account_id = ANY(p_candidates)
          AND (a.agent_id = p_agent OR a.agent_id IS NULL) AND {IN_SCOPE}
          AND NOT q.frozen AND {IN_FORCE} AND {READY} AND {FREE}
        ORDER BY array_position(p_candidates, a.account_id) LIMIT 1),
    taken AS (
        INSERT INTO queues.leases AS l (account_id, agent_id, expires_at)
        SELECT account_id, p_agent, now() + make_interval(mins => p_minutes) FROM still
        ON CONFLICT (account_id) DO UPDATE
            SET agent_id = excluded.agent_id, leased_at = now(), expires_at = excluded.expires_at
            WHERE l.expires_at <= now()
        RETURNING l.account_id, l.expires_at),
    logged AS (
        INSERT INTO queues.work_log (account_id, queue_id, agent_id, event)
        SELECT s.account_id, s.queue_id, p_agent, 'pulled' FROM still s JOIN taken USING (account_id))
    SELECT s.account_id, s.debtor_id, s.queue_id, s.queue::text, s.rank, t.expires_at
    FROM taken t JOIN still s USING (account_id);
END $pull$"""

NEXT_ACCOUNT = f"""
CREATE FUNCTION queues.next_account(p_agent integer, p_all boolean, p_institutions integer[],
                                    p_minutes integer, p_window integer)
RETURNS TABLE ({ANSWER}) LANGUAGE plpgsql VOLATILE AS $pull$
#variable_conflict use_column
-- The agent's next account (see queues.working.next_account), or the one they hold.
DECLARE
    v_queues integer[];
    v_queue integer;
    v_own boolean;
    v_candidates bigint[];
BEGIN
    -- one pull per agent at a time: two at once (a double click) would lease two accounts
    PERFORM pg_advisory_xact_lock(hashtext('queues.pull'), p_agent);
    -- a held lease on an account that may no longer be worked now ends, as a release does
    WITH gone AS (
        DELETE FROM queues.leases l
        USING queues.account_facts f
        LEFT JOIN queues.institution_rules r ON r.institution_id = f.institution_id
        WHERE l.agent_id = p_agent AND l.expires_at > now() AND f.account_id = l.account_id
          AND NOT ({READY})
        RETURNING l.account_id)
    INSERT INTO queues.work_log (account_id, queue_id, agent_id, event)
    SELECT g.account_id, a.queue_id, p_agent, 'released'
    FROM gone g LEFT JOIN queues.assignments a ON a.account_id = g.account_id;
    -- finish (or release) the one you hold first
    RETURN QUERY
        SELECT l.account_id, f.debtor_id, a.queue_id, q.name::text, a.rank, l.expires_at
        FROM queues.leases l
        JOIN queues.assignments a ON a.account_id = l.account_id
        JOIN queues.account_facts f ON f.account_id = l.account_id
        JOIN queues.queues q ON q.id = a.queue_id
        WHERE l.agent_id = p_agent AND l.expires_at > now() LIMIT 1;
    IF FOUND THEN
        RETURN;
    END IF;
    v_queues := ARRAY(
        SELECT q.id FROM queues.queues q
        JOIN queues.strategies s ON s.id = q.strategy_id
        JOIN queues.team_members m ON m.team_id = q.team_id AND m.agent_id = p_agent
        WHERE NOT q.frozen AND {IN_FORCE}
        ORDER BY q.position, q.id);
    -- queue by queue, the agent's own accounts then nobody's
    FOREACH v_queue IN ARRAY v_queues LOOP
        FOREACH v_own IN ARRAY ARRAY[true, false] LOOP
            v_candidates := queues.pull_candidates(p_agent, p_all, p_institutions, v_queue,
                                                   v_own, p_window);
            IF cardinality(v_candidates) > 0 THEN
                RETURN QUERY SELECT * FROM queues.pull_take(p_agent, p_all, p_institutions,
                                                            v_candidates, p_minutes);
                IF FOUND THEN
                    RETURN;
                END IF;
            END IF;
        END LOOP;
    END LOOP;
END $pull$"""


def upgrade() -> None:
    op.execute(PULL_CANDIDATES)
    op.execute(PULL_TAKE)
    op.execute(NEXT_ACCOUNT)


def downgrade() -> None:
    op.execute("DROP FUNCTION queues.next_account(integer, boolean, integer[], integer, integer)")
    op.execute("DROP FUNCTION queues.pull_take(integer, boolean, integer[], bigint[], integer)")
    op.execute("DROP FUNCTION queues.pull_candidates(integer, boolean, integer[], integer, "
               "boolean, integer)")
