"""The SQL of bulk imports, generated per layout: parse and validate, then merge per chunk.

Nothing here runs a query; ``import_read``, ``import_merge`` and ``import_run`` do. Every
statement works on whole sets:

* ``stage_ddl``: the raw staging table, one ``text`` column per file column and the
  spreadsheet row number, filled by COPY (``FREEZE``: no hint-bit rewrite on first read).
* ``flags_sql``: one pass over the whole file for what a chunk cannot see alone: keys
  repeated within the file (the first row stays, later ones are "Duplicado de la fila N")
  and, in portfolio files, customers whose rows fall in more than one chunk ("deferred":
  merged after the others, one chunk at a time, so the file's last row of a customer
  wins and two transactions never write the same debtor at once).
* ``parse_sql``: per chunk (a range of rows), one ``CREATE TEMP TABLE imp_parsed AS
  SELECT`` that trims, converts (dates in the layout's format, amounts with its
  separators, catalogue codes) and validates each row, collecting its problems in a
  ``text[]`` (``"field|problem"``); ``problems_sql`` turns them into the report.
* ``portfolio_merge`` / ``payments_merge``: the handful of statements that merge the
  chunk's valid rows, in the same transaction.

Only identifiers the code makes (``c1``…, field names from the catalogue, table names
with the job id) and values checked against allow-lists (separators, date formats) are
spliced into the text; ``lit`` quotes every literal.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .aging import NO_PHONE_TO_CALL
from .contracts import DATE_FORMATS

DIGITS = "0123456789"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

#: Spanish and English words accepted for each debtor kind and account stage
KIND_WORDS = {
    "person": ("persona", "persona fisica", "persona física", "fisica", "física", "pf",
               "person", "individual"),
    "company": ("empresa", "persona moral", "moral", "pm", "company", "business"),
}
STAGE_WORDS = {
    "current": ("al corriente", "corriente", "vigente", "current"),
    "delinquent": ("moroso", "morosa", "vencido", "vencida", "mora", "delinquent"),
    "litigation": ("litigio", "juridico", "jurídico", "legal", "litigation"),
}
#: yes/no cells of the do-not-contact columns (lower case, trimmed)
FLAG_WORDS = {
    "true": ("si", "sí", "s", "x", "1", "true", "t", "yes", "y", "verdadero", "no contactar",
             "no llamar"),
    "false": ("no", "n", "0", "false", "f", "falso"),
}
#: Mexican states whose time zone is not Mexico City's (the institution's default):
#: normalised state name -> IANA zone. The contact-hours policy reads address.time_zone.
STATE_TIME_ZONES = {
    "baja california": "America/Tijuana",
    "bc": "America/Tijuana",
    "baja california sur": "America/Mazatlan",
    "bcs": "America/Mazatlan",
    "sinaloa": "America/Mazatlan",
    "nayarit": "America/Mazatlan",
    "sonora": "America/Hermosillo",
    "chihuahua": "America/Chihuahua",
    "quintana roo": "America/Cancun",
}


def lit(value) -> str:
    """A SQL literal (standard_conforming_strings is on in every supported PostgreSQL)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    text = str(value)
    if "\x00" in text:
        raise ValueError("NUL in a SQL literal")
    return "'" + text.replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def date_expr(r: str, fmt: str) -> str:
    """SQL turning the trimmed text ``r`` into a date, or NULL when it is not a real date
    in format ``fmt`` (wrong shape, month 13, 31/02, a year outside 1900-2199). Casts run
    only after the shape (digits and separators in the right places) is checked."""
    spec = DATE_FORMATS[fmt]
    if spec.sep:
        parts = {p: f"split_part({r}, {lit(spec.sep)}, {i + 1})" for i, p in enumerate(spec.order)}
        lengths = " AND ".join(
            f"length({parts[p]}) " + ("= 4" if p == "Y" else "= 2" if p == "y" else "BETWEEN 1 AND 2")
            for p in spec.order)
        shape = f"translate({r}, {lit(DIGITS)}, '') = {lit(spec.sep * 2)} AND {lengths}"
    else:  # compact AAAAMMDD
        parts = {"Y": f"substr({r}, 1, 4)", "m": f"substr({r}, 5, 2)", "d": f"substr({r}, 7, 2)"}
        shape = f"length({r}) = 8 AND translate({r}, {lit(DIGITS)}, '') = ''"
    if "Y" in parts:
        y = f"({parts['Y']})::int"
    else:  # two-digit year, as Python's strptime reads it: 69-99 -> 19xx, 00-68 -> 20xx
        yy = f"({parts['y']})::int"
        y = f"(CASE WHEN {yy} < 69 THEN 2000 + {yy} ELSE 1900 + {yy} END)"
    m, d = f"({parts['m']})::int", f"({parts['d']})::int"
    days = (f"CASE WHEN {m} IN (4, 6, 9, 11) THEN 30 WHEN {m} = 2 THEN "
            f"CASE WHEN {y} % 4 = 0 AND ({y} % 100 <> 0 OR {y} % 400 = 0) THEN 29 ELSE 28 END "
            f"ELSE 31 END")
    return (f"CASE WHEN {shape} THEN CASE WHEN {y} BETWEEN 1900 AND 2199 AND {m} BETWEEN 1 AND 12 "
            f"AND {d} BETWEEN 1 AND {days} THEN make_date({y}, {m}, {d}) END END")


def amount_text_expr(column: str, decimal_separator: str, thousands_separator: str) -> str:
    """SQL normalising an amount as the file writes it into ``-1234.56`` form (still text):
    without a currency sign, thousands separators removed, the decimal separator a dot."""
    expr = f"btrim(replace({column}, '$', ''))"
    if thousands_separator:
        expr = f"replace({expr}, {lit(thousands_separator)}, '')"
    if decimal_separator != ".":
        expr = f"replace({expr}, {lit(decimal_separator)}, '.')"
    return f"NULLIF({expr}, '')"


def amount_expr(n: str, positive: bool) -> str:
    """SQL turning normalised amount text ``n`` into NUMERIC(14,2), or NULL: at most 12
    integer digits and 2 decimals, never negative (``positive``: also never zero).
    The cast runs only once the characters are known to form a number."""
    shape = (f"translate({n}, {lit(DIGITS)}, '') IN ('', '.') "
             f"AND length(translate({n}, '.', '')) BETWEEN 1 AND 14 "
             f"AND (strpos({n}, '.') = 0 OR length({n}) - strpos({n}, '.') <= 2) "
             f"AND length(split_part({n}, '.', 1)) <= 12")
    value = f"({n})::numeric(14, 2)"
    if positive:
        return f"CASE WHEN {shape} THEN CASE WHEN {value} > 0 THEN {value} END END"
    return f"CASE WHEN {shape} THEN {value} END"


def amount_problem(n: str, positive: bool, example: str) -> str:
    zero = (f"WHEN translate({n}, '0.', '') = '' THEN 'El monto debe ser mayor que cero' "
            if positive else "")
    return (f"CASE WHEN left({n}, 1) = '-' THEN 'El monto no puede ser negativo' {zero}"
            f"ELSE {lit(f'Monto inválido (formato {example})')} END")


def words_case(r: str, words: dict) -> str:
    whens = " ".join(f"WHEN {lit(w)} THEN {lit(value)}"
                     for value, options in words.items() for w in options)
    return f"CASE {r} {whens} END"


@dataclass(frozen=True)
class Column:
    """One Recaudo field of a layout found in the file."""

    field: str
    type: str
    column: str          # the staging table's column holding it (c1, c2, ...)
    header: str          # the file's header, for the report
    required: bool
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None


@dataclass
class Plan:
    """Everything the SQL of one import needs to know."""

    job_id: int
    kind: str                        # portfolio | payments
    institution_id: int
    columns: dict[str, Column]       # field -> where it is
    date_format: str = "%Y-%m-%d"
    decimal_separator: str = "."
    thousands_separator: str = ""
    chunk_rows: int = 20_000
    file_columns: int = 0            # how many columns the file has (staging width)
    headers: dict = field(default_factory=dict)

    @property
    def stage(self) -> str:
        return f"portfolio_import.stage_{int(self.job_id)}"

    @property
    def flags(self) -> str:
        return f"portfolio_import.flags_{int(self.job_id)}"

    @property
    def deferred(self) -> str:
        return f"portfolio_import.deferred_{int(self.job_id)}"

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.stage, self.flags, self.deferred)

    @property
    def key(self) -> str:
        return "customer_number" if self.kind == "portfolio" else "account_number"

    def has(self, name: str) -> bool:
        return name in self.columns

    def amount_example(self) -> str:
        thousands = self.thousands_separator
        return f"1{thousands}234{self.decimal_separator}56"


# --- staging ------------------------------------------------------------------------

def stage_ddl(plan: Plan) -> str:
    """The raw staging table: one text column per file column, and the spreadsheet row
    number (the header is row 1, so the first data row is 2; COPY keeps file order)."""
    cols = ", ".join(f"c{i} text" for i in range(1, plan.file_columns + 1))
    return (f"CREATE UNLOGGED TABLE {plan.stage} (row_number bigint GENERATED BY DEFAULT AS "
            f"IDENTITY (START WITH 2) NOT NULL, {cols})")


def stage_columns(plan: Plan) -> str:
    return ", ".join(f"c{i}" for i in range(1, plan.file_columns + 1))


# --- parsing and validation -----------------------------------------------------------

def _raw(col: Column, plan: Plan) -> list[str]:
    """Level 1: the trimmed text (``r_<field>``) and, for amounts and phones, a
    normalised form (``n_<field>``)."""
    src = f"s.{col.column}"
    trimmed = f"NULLIF(btrim({src}), '')"
    r = {"upper": f"upper({trimmed})", "currency": f"upper({trimmed})",
         "status": f"upper({trimmed})", "kind": f"lower({trimmed})",
         "stage": f"lower({trimmed})", "email": f"lower({trimmed})",
         "flag": f"lower({trimmed})"}.get(col.type, trimmed)
    out = [f"{r} AS r_{col.field}"]
    if col.type in ("amount", "positive_amount"):
        out.append(f"{amount_text_expr(src, plan.decimal_separator, plan.thousands_separator)}"
                   f" AS n_{col.field}")
    elif col.type == "phone":
        out.append(f"translate(btrim({src}), ' ()-.+/', '') AS n_{col.field}")
    return out


def _typed(col: Column, plan: Plan) -> str:
    """Level 2: the typed value ``v_<field>``, NULL when blank or invalid."""
    r, n = f"l1.r_{col.field}", f"l1.n_{col.field}"
    t = col.type
    if t in ("text", "upper"):
        expr = f"CASE WHEN length({r}) <= {col.max_length} THEN {r} END"
    elif t == "currency":
        expr = f"CASE WHEN length({r}) = 3 AND translate({r}, {lit(UPPER)}, '') = '' THEN {r} END"
    elif t == "kind":
        expr = words_case(r, KIND_WORDS)
    elif t == "stage":
        expr = words_case(r, STAGE_WORDS)
    elif t == "flag":
        expr = f"({words_case(r, FLAG_WORDS)})::boolean"
    elif t == "status":
        expr = "st.id"
    elif t == "date":
        expr = date_expr(r, plan.date_format)
    elif t in ("amount", "positive_amount"):
        expr = amount_expr(n, positive=t == "positive_amount")
    elif t == "integer":
        expr = (f"CASE WHEN length({r}) <= 6 AND translate({r}, {lit(DIGITS)}, '') = '' THEN "
                f"CASE WHEN ({r})::int BETWEEN {col.minimum} AND {col.maximum} THEN ({r})::int "
                f"END END")
    elif t == "phone":
        expr = (f"CASE WHEN translate({n}, {lit(DIGITS)}, '') = '' "
                f"AND length({n}) BETWEEN 8 AND 15 THEN CASE "
                f"WHEN length({n}) = 12 AND left({n}, 2) = '52' THEN substr({n}, 3) "
                f"WHEN length({n}) = 13 AND left({n}, 3) = '521' THEN substr({n}, 4) "
                f"ELSE {n} END END")
    elif t == "email":
        expr = (f"CASE WHEN length({r}) <= 254 AND {r} LIKE '_%@_%._%' AND strpos({r}, ' ') = 0 "
                f"AND strpos(substr({r}, strpos({r}, '@') + 1), '@') = 0 THEN {r} END")
    else:  # pragma: no cover - the catalogue has no other types
        raise ValueError(f"unknown field type {t}")
    return f"{expr} AS v_{col.field}"


def _message(col: Column, plan: Plan) -> str:
    """SQL text of the problem of a non-blank value that did not convert."""
    t = col.type
    if t in ("amount", "positive_amount"):
        return amount_problem(f"l2.n_{col.field}", t == "positive_amount", plan.amount_example())
    message = {
        "text": f"Demasiado largo (máximo {col.max_length} caracteres)",
        "upper": f"Demasiado largo (máximo {col.max_length} caracteres)",
        "currency": "Moneda inválida (3 letras, p. ej. MXN)",
        "kind": "Tipo de persona inválido (persona o empresa)",
        "stage": "Etapa inválida (al corriente, moroso o litigio)",
        "status": "Estatus desconocido en esta institución",
        "date": f"Fecha inválida (formato {DATE_FORMATS[plan.date_format].label})",
        "integer": f"Número entero inválido (de {col.minimum} a {col.maximum})",
        "phone": "Teléfono inválido (10 dígitos)",
        "email": "Correo electrónico inválido",
        "flag": "Valor inválido (sí o no)",
    }[t]
    return lit(message)


def _problems(plan: Plan) -> str:
    items = []
    for col in plan.columns.values():
        blank = lit(f"{col.field}|Obligatorio") if col.required else "NULL"
        items.append(f"CASE WHEN l2.r_{col.field} IS NULL THEN {blank} "
                     f"WHEN l2.v_{col.field} IS NULL THEN {lit(col.field + '|')} || "
                     f"{_message(col, plan)} END")
    items.append("CASE WHEN l2.duplicate_of IS NOT NULL THEN "
                 "'account_number|Duplicado de la fila ' || l2.duplicate_of END")
    if plan.kind == "portfolio":
        schedule = [f for f in ("instalment_count", "instalment_amount", "first_due_date")
                    if plan.has(f)]
        if schedule:
            any_given = " OR ".join(f"l2.r_{f} IS NOT NULL" for f in schedule)
            for f in schedule:
                items.append(f"CASE WHEN l2.r_{f} IS NULL AND ({any_given}) THEN "
                             f"{lit(f + '|Obligatorio cuando hay plan de pagos')} END")
        if plan.has("instalments_paid") and plan.has("instalment_count"):
            items.append("CASE WHEN l2.v_instalments_paid > l2.v_instalment_count THEN "
                         "'instalments_paid|Mayor que el número de cuotas' END")
    else:
        items.append("CASE WHEN l2.v_account_number IS NOT NULL AND l2.v_account_id IS NULL "
                     "THEN 'account_number|Cuenta inexistente en esta institución' END")
        items.append("CASE WHEN l2.v_value_date > current_date THEN "
                     "'value_date|Fecha futura' END")
    return f"array_remove(ARRAY[{', '.join(items)}]::text[], NULL)"


def _key_expr(plan: Plan, field: str) -> str:
    """The trimmed text of a key column as the flags pass compares it."""
    return f"NULLIF(btrim(s.{plan.columns[field].column}), '')"


def flags_sql(plan: Plan) -> str:
    """``CREATE UNLOGGED TABLE <flags>``: the rows repeating an earlier row's key (account
    number; for payments account number and reference) with the row they repeat, and in
    portfolio files the rows of customers found in more than one chunk (``deferred``).
    One scan, two hash aggregates (GROUPING SETS), one join back."""
    c = int(plan.chunk_rows)
    acct = _key_expr(plan, "account_number")
    if plan.kind == "payments":
        ref = _key_expr(plan, "reference")
        return (
            f"CREATE UNLOGGED TABLE {plan.flags} AS "
            f"SELECT s.row_number, d.first AS duplicate_of, false AS deferred "
            f"FROM {plan.stage} s JOIN (SELECT acct, ref, min(row_number) AS first "
            f"FROM (SELECT {acct} AS acct, {ref} AS ref, s.row_number FROM {plan.stage} s) k "
            f"WHERE acct IS NOT NULL AND ref IS NOT NULL GROUP BY acct, ref "
            f"HAVING count(*) > 1) d ON d.acct = {acct} AND d.ref = {ref} "
            f"AND s.row_number > d.first")
    cust = _key_expr(plan, "customer_number")
    return (
        f"CREATE UNLOGGED TABLE {plan.flags} AS "
        f"WITH k AS MATERIALIZED (SELECT acct, cust, min(row_number) AS first, "
        f"max(row_number) AS last, count(*) AS n, GROUPING(acct, cust) AS g "
        f"FROM (SELECT {acct} AS acct, {cust} AS cust, s.row_number FROM {plan.stage} s) x "
        f"GROUP BY GROUPING SETS ((acct), (cust))), "
        f"dup AS (SELECT acct, first FROM k WHERE g = 1 AND acct IS NOT NULL AND n > 1), "
        f"spread AS (SELECT cust FROM k WHERE g = 2 AND cust IS NOT NULL "
        f"AND (first - 2) / {c} <> (last - 2) / {c}) "
        f"SELECT s.row_number, dup.first AS duplicate_of, spread.cust IS NOT NULL AS deferred "
        f"FROM {plan.stage} s "
        f"LEFT JOIN dup ON dup.acct = {acct} AND s.row_number > dup.first "
        f"LEFT JOIN spread ON spread.cust = {cust} "
        f"WHERE dup.first IS NOT NULL OR spread.cust IS NOT NULL")


def deferred_sql(plan: Plan) -> str:
    """The deferred rows in (customer, row) order, cut into chunks (a customer may span
    two of them: they run one after the other, so its later rows still win)."""
    cust = _key_expr(plan, "customer_number")
    return (
        f"CREATE UNLOGGED TABLE {plan.deferred} AS "
        f"SELECT s.row_number, (row_number() OVER (ORDER BY {cust} COLLATE \"C\", "
        f"s.row_number) - 1) / {int(plan.chunk_rows)} AS chunk "
        f"FROM {plan.stage} s JOIN {plan.flags} f USING (row_number) WHERE f.deferred")


def chunk_rows_sql(plan: Plan, deferred: bool) -> str:
    """FROM/WHERE selecting a chunk's staging rows ``s`` with their flags ``f``: a range of
    rows (``:lo``..``:hi``, deferred rows left out) or a chunk (``:chunk``) of deferred ones."""
    if deferred:
        return (f"FROM {plan.deferred} q JOIN {plan.stage} s ON s.row_number = q.row_number "
                f"LEFT JOIN {plan.flags} f ON f.row_number = s.row_number "
                f"WHERE q.chunk = :chunk")
    return (f"FROM {plan.stage} s LEFT JOIN {plan.flags} f ON f.row_number = s.row_number "
            f"AND f.row_number BETWEEN :lo AND :hi "
            f"WHERE s.row_number BETWEEN :lo AND :hi AND f.deferred IS NOT TRUE")


def parse_sql(plan: Plan, deferred: bool = False) -> str:
    """``CREATE TEMP TABLE imp_parsed``: one typed row per file row of the chunk, with its
    problems (``problems = '{}'`` means valid), dropped at commit."""
    cols = list(plan.columns.values())
    raw = ", ".join(e for col in cols for e in _raw(col, plan))
    typed = ", ".join(_typed(col, plan) for col in cols)
    joins = ""
    inst = int(plan.institution_id)
    if plan.has("status"):
        joins += (f" LEFT JOIN portfolio.statuses st ON st.institution_id = {inst} "
                  f"AND st.code = l1.r_status")
    if plan.kind == "payments":
        # the account column may hold the account's number or its payment reference
        # (payment_refs: what a bank's or store's file reports back)
        joins += (f" LEFT JOIN portfolio.accounts acc ON acc.institution_id = {inst} "
                  f"AND acc.account_number = l1.r_account_number"
                  f" LEFT JOIN portfolio.payment_references pref ON pref.institution_id = {inst} "
                  f"AND pref.reference = l1.r_account_number")
        typed += ", COALESCE(acc.id, pref.account_id) AS v_account_id"
    fields = ", ".join(f"l2.v_{col.field} AS {ident(col.field)}" for col in cols)
    if plan.kind == "payments":
        fields += ", l2.v_account_id AS account_id"
    return (
        f"CREATE TEMP TABLE imp_parsed ON COMMIT DROP AS "
        f"SELECT l2.row_number, {fields}, {_problems(plan)} AS problems "
        f"FROM (SELECT l1.*, {typed} "
        f"FROM (SELECT s.row_number, f.duplicate_of, {raw} {chunk_rows_sql(plan, deferred)} "
        f"OFFSET 0) l1{joins} OFFSET 0) l2")


def problems_sql(plan: Plan) -> str:
    """The chunk's lines of the validation report (at most ``:room``), the file's header
    naming each column."""
    return (
        f"INSERT INTO portfolio.import_problems (job_id, row_number, \"column\", problem) "
        f"SELECT {int(plan.job_id)}, p.row_number, left(COALESCE(h.header, ''), 80), "
        f"left(substr(p.item, strpos(p.item, '|') + 1), 300) "
        f"FROM (SELECT c.row_number, x.item, x.ord FROM imp_parsed c "
        f"CROSS JOIN LATERAL unnest(c.problems) WITH ORDINALITY x(item, ord) "
        f"WHERE c.problems <> '{{}}' ORDER BY c.row_number, x.ord LIMIT :room) p "
        f"LEFT JOIN jsonb_each_text(CAST(:headers AS jsonb)) h(field, header) "
        f"ON h.field = split_part(p.item, '|', 1)")


COUNT_SQL = ("SELECT count(*) AS rows, count(*) FILTER (WHERE problems <> '{}') AS rejected, "
             "coalesce(sum(cardinality(problems)), 0) AS problems FROM imp_parsed")


# --- merging one chunk --------------------------------------------------------------------

def _valid(plan: Plan) -> str:
    return "imp_parsed WHERE problems = '{}'"


DEBTOR_FIELDS = ("kind", "tax_id", "national_id", "birth_date")

#: Ends a LATERAL subquery that looks the chunk's rows up in a permanent table by an
#: index (debtor_id, or the account's key): OFFSET 0 keeps it a per-row probe. Flattened
#: into an anti-join, PostgreSQL preferred reading the whole table (every institution's
#: addresses) once per chunk to 20,000 probes, and a 1M-row import spent its time
#: re-reading what earlier chunks wrote. Not LIMIT 1: planned with the statistics of an
#: institution still empty, a LIMIT probe walked the institution's index for a row that
#: was never there.
PROBE = "OFFSET 0"


def _flag_changes(plan: Plan, channel: str, table: str, flag: str, marks: str, match: str,
                  contact: str) -> str:
    """Set the file's do-not-contact marks on contacts of one kind and record each change
    in the debtor's history, under the import's user and file (as a person's would be).
    ``marks``: a query of (debtor_id, key, flag), one row per contact."""
    return (
        f"WITH f AS ({marks}), changed AS (UPDATE portfolio.{table} x SET {flag} = f.flag "
        f"FROM f WHERE x.debtor_id = f.debtor_id AND {match} AND x.{flag} <> f.flag "
        f"RETURNING x.id, x.debtor_id, {contact} AS contact, x.{flag} AS flag) "
        f"INSERT INTO portfolio.do_not_contact_changes (debtor_id, channel, contact_id, "
        f"contact, do_not_contact, reason, changed_by, changed_by_name) "
        f"SELECT c.debtor_id, {lit(channel)}, c.id, c.contact, c.flag, "
        f"left('Archivo ' || j.file_name, 500), j.created_by, 'Importación #' || j.id "
        f"FROM changed c JOIN portfolio.import_jobs j ON j.id = {int(plan.job_id)}")


def flag_statements(plan: Plan) -> list[str]:
    """The do-not-contact columns of a portfolio file (blank: the mark stays as it is;
    the file's last row of a contact wins)."""
    has, stmts = plan.has, []
    pairs = [(f"r.phone{i}", f"r.phone{i}_do_not_call") for i in (1, 2, 3)
             if has(f"phone{i}_do_not_call")]
    if pairs:
        values = ", ".join(f"({number}, {flag})" for number, flag in pairs)
        marks = (f"SELECT DISTINCT ON (r.debtor_id, p.number) r.debtor_id, p.number AS key, "
                 f"p.flag FROM imp_rows r CROSS JOIN LATERAL (VALUES {values}) p(number, flag) "
                 f"WHERE p.number IS NOT NULL AND p.flag IS NOT NULL "
                 f"ORDER BY r.debtor_id, p.number, r.row_number DESC")
        stmts.append(_flag_changes(plan, "phone", "phones", "do_not_call", marks,
                                   "x.number = f.key", "x.number"))
    if has("email_do_not_contact"):
        marks = ("SELECT DISTINCT ON (r.debtor_id, r.email) r.debtor_id, r.email AS key, "
                 "r.email_do_not_contact AS flag FROM imp_rows r WHERE r.email IS NOT NULL "
                 "AND r.email_do_not_contact IS NOT NULL "
                 "ORDER BY r.debtor_id, r.email, r.row_number DESC")
        stmts.append(_flag_changes(plan, "email", "emails", "do_not_contact", marks,
                                   "x.address = f.key", "x.address"))
    if has("address_do_not_contact"):
        marks = ("SELECT DISTINCT ON (r.debtor_id, r.street) r.debtor_id, r.street AS key, "
                 "r.address_do_not_contact AS flag FROM imp_rows r WHERE r.street IS NOT NULL "
                 "AND r.address_do_not_contact IS NOT NULL "
                 "ORDER BY r.debtor_id, r.street, r.row_number DESC")
        described = ("left(concat_ws(', ', x.street, x.neighborhood, x.municipality, x.state, "
                     "x.postal_code), 300)")
        stmts.append(_flag_changes(plan, "address", "addresses", "do_not_contact", marks,
                                   "x.street = f.key", described))
    return stmts


def portfolio_merge(plan: Plan) -> list[str]:
    """The statements merging one chunk of a portfolio file, in order (one transaction).

    Temporary tables (dropped at commit) hold the chunk's debtors and accounts:
    ``imp_debtors`` (customer number -> debtor id) and ``imp_accounts`` (row -> account
    id and the stage it had before, NULL for a new account). A blank optional cell never
    erases what Recaudo already has; the file's last row of a customer gives its data."""
    inst = int(plan.institution_id)
    has = plan.has
    debtor_cols = [f for f in DEBTOR_FIELDS if has(f)]
    stmts = []

    # debtors: the chunk's customers (last row wins), existing ones updated when changed
    src_cols = ", ".join(ident(c) for c in ["customer_number", "name", *debtor_cols])
    stmts.append(
        f"CREATE TEMP TABLE imp_src ON COMMIT DROP AS SELECT DISTINCT ON (customer_number) "
        f"row_number, {src_cols} FROM {_valid(plan)} ORDER BY customer_number, row_number DESC")
    stmts.append("ANALYZE imp_src (customer_number)")
    stmts.append(
        f"CREATE TEMP TABLE imp_debtors ON COMMIT DROP AS SELECT s.customer_number, d.id "
        f"FROM imp_src s JOIN portfolio.debtors d ON d.institution_id = {inst} "
        f"AND d.customer_number = s.customer_number")
    new_vals = {"name": "s.name", **{c: f"COALESCE(s.{ident(c)}, d.{ident(c)})"
                                     for c in debtor_cols}}
    sets = ", ".join(f"{ident(c)} = {v}" for c, v in new_vals.items())
    old = ", ".join(f"d.{ident(c)}" for c in new_vals)
    new = ", ".join(new_vals.values())
    stmts.append(
        f"UPDATE portfolio.debtors d SET {sets}, updated_at = now() "
        f"FROM imp_src s JOIN imp_debtors m USING (customer_number) "
        f"WHERE d.id = m.id AND ({old}) IS DISTINCT FROM ({new})")
    ins_cols = ["customer_number", "name", *debtor_cols]
    ins_vals = [f"s.{ident(c)}" if c != "kind" else "COALESCE(s.kind, 'person')"
                for c in ins_cols]
    stmts.append(
        f"WITH ins AS (INSERT INTO portfolio.debtors (institution_id, "
        f"{', '.join(ident(c) for c in ins_cols)}) "
        f"SELECT {inst}, {', '.join(ins_vals)} FROM imp_src s WHERE NOT EXISTS "
        f"(SELECT 1 FROM imp_debtors m WHERE m.customer_number = s.customer_number) "
        f"ORDER BY s.customer_number RETURNING customer_number, id) "
        f"INSERT INTO imp_debtors SELECT customer_number, id FROM ins")
    stmts.append("ANALYZE imp_debtors")

    # the chunk's valid rows with their debtor
    stmts.append(
        "CREATE TEMP TABLE imp_rows ON COMMIT DROP AS SELECT c.*, m.id AS debtor_id "
        "FROM imp_parsed c JOIN imp_debtors m USING (customer_number) "
        "WHERE c.problems = '{}'")
    stmts.append("ANALYZE imp_rows (row_number, account_number, debtor_id)")

    # accounts: existing ones (and their stage before), updated; new ones inserted
    stmts.append(
        f"CREATE TEMP TABLE imp_accounts ON COMMIT DROP AS SELECT r.row_number, "
        f"a.id AS account_id, a.stage AS old_stage FROM imp_rows r "
        f"JOIN portfolio.accounts a ON a.institution_id = {inst} "
        f"AND a.account_number = r.account_number")
    derived = None  # a stage implied by the file's days past due
    if has("days_past_due"):
        derived = ("CASE WHEN r.days_past_due > 0 THEN 'delinquent' "
                   "WHEN r.days_past_due = 0 THEN 'current' END")
    optional = ("product", "currency", "original_amount", "overdue_amount", "days_past_due",
                "opened_on")
    upd = {"debtor_id": "r.debtor_id", "balance": "r.balance"}
    for name in optional:
        if has(name):
            upd[name] = f"COALESCE(r.{name}, a.{name})"
    if has("status"):
        upd["status_id"] = "COALESCE(r.status, a.status_id)"
    if has("stage") or derived:
        parts = ["r.stage"] if has("stage") else []
        if derived:  # litigation is set by hand and kept
            parts.append(f"CASE WHEN a.stage = 'litigation' THEN 'litigation' ELSE {derived} END")
        upd["stage"] = f"COALESCE({', '.join(parts)}, a.stage)"
    sets = ", ".join(f"{c} = {v}" for c, v in upd.items())
    old = ", ".join(f"a.{c}" for c in upd)
    new = ", ".join(upd.values())
    stmts.append(
        f"UPDATE portfolio.accounts a SET {sets}, updated_at = now() "
        f"FROM imp_rows r JOIN imp_accounts m USING (row_number) "
        f"WHERE a.id = m.account_id AND ({old}) IS DISTINCT FROM ({new})")
    defaults = {"product": "''", "currency": "i.currency", "original_amount": "0",
                "overdue_amount": "0", "days_past_due": "0", "opened_on": "NULL"}
    ins = {"institution_id": str(inst), "debtor_id": "r.debtor_id",
           "account_number": "r.account_number", "balance": "r.balance",
           "currency": "i.currency"}
    for name in optional:
        if has(name):
            ins[name] = f"COALESCE(r.{name}, {defaults[name]})"
    if has("status"):
        ins["status_id"] = "r.status"
    parts = (["r.stage"] if has("stage") else []) + ([derived] if derived else [])
    ins["stage"] = "COALESCE(" + ", ".join([*parts, "'current'"]) + ")"
    stmts.append(
        f"WITH ins AS (INSERT INTO portfolio.accounts ({', '.join(ins)}) "
        f"SELECT {', '.join(ins.values())} FROM imp_rows r "
        f"JOIN portfolio.institutions i ON i.id = {inst} "
        f"WHERE NOT EXISTS (SELECT 1 FROM imp_accounts m WHERE m.row_number = r.row_number) "
        f"RETURNING account_number, id) "
        f"INSERT INTO imp_accounts SELECT r.row_number, ins.id, NULL FROM ins "
        f"JOIN imp_rows r USING (account_number)")
    stmts.append("ANALYZE imp_accounts")

    # contacts: phones (digits only), e-mail (lower case), an address, a guarantor
    phones = [(f, i) for i, f in enumerate(("phone1", "phone2", "phone3"), start=1) if has(f)]
    if phones:
        values = ", ".join(f"(r.{f}, {i})" for f, i in phones)
        stmts.append(
            f"INSERT INTO portfolio.phones (debtor_id, number, priority) "
            f"SELECT DISTINCT ON (r.debtor_id, p.number) r.debtor_id, p.number, p.priority "
            f"FROM imp_rows r CROSS JOIN LATERAL (VALUES {values}) p(number, priority) "
            f"WHERE p.number IS NOT NULL ORDER BY r.debtor_id, p.number, p.priority "
            f"ON CONFLICT (debtor_id, number) DO NOTHING")
    if has("email"):
        stmts.append(
            "INSERT INTO portfolio.emails (debtor_id, address) "
            "SELECT DISTINCT r.debtor_id, r.email FROM imp_rows r WHERE r.email IS NOT NULL "
            "ON CONFLICT (debtor_id, address) DO NOTHING")
    if has("street"):
        extra = [c for c in ("neighborhood", "municipality", "state", "postal_code") if has(c)]
        cols = ", ".join(["street", *extra])
        zone = "NULL"
        if has("state"):
            normal = ("translate(lower(btrim(r.state)), 'áéíóúü', 'aeiouu')")
            zone = "CASE " + normal + " " + " ".join(
                f"WHEN {lit(k)} THEN {lit(v)}" for k, v in STATE_TIME_ZONES.items()) + " END"
        same_pc = ("AND x.postal_code IS NOT DISTINCT FROM r.postal_code"
                   if has("postal_code") else "")
        stmts.append(
            f"INSERT INTO portfolio.addresses (debtor_id, {cols}, time_zone) "
            f"SELECT DISTINCT ON (r.debtor_id, r.street) r.debtor_id, "
            f"{', '.join('r.' + c for c in ['street', *extra])}, {zone} "
            f"FROM imp_rows r LEFT JOIN LATERAL (SELECT true AS found FROM portfolio.addresses x "
            f"WHERE x.debtor_id = r.debtor_id AND x.street = r.street {same_pc} {PROBE}) x "
            f"ON true WHERE r.street IS NOT NULL AND x.found IS NULL "
            f"ORDER BY r.debtor_id, r.street, r.row_number DESC")
    stmts += flag_statements(plan)
    if has("guarantor_name"):
        phone = "r.guarantor_phone" if has("guarantor_phone") else "NULL"
        stmts.append(
            f"INSERT INTO portfolio.guarantors (debtor_id, name, phone) "
            f"SELECT DISTINCT ON (r.debtor_id, r.guarantor_name) r.debtor_id, r.guarantor_name, "
            f"{phone} FROM imp_rows r LEFT JOIN LATERAL (SELECT true AS found "
            f"FROM portfolio.guarantors g WHERE g.debtor_id = r.debtor_id "
            f"AND g.name = r.guarantor_name {PROBE}) g ON true "
            f"WHERE r.guarantor_name IS NOT NULL AND g.found IS NULL "
            f"ORDER BY r.debtor_id, r.guarantor_name, "
            f"r.row_number DESC")

    # the instalment schedule: monthly from the first due date; the first N paid
    if has("instalment_count"):
        paid = "COALESCE(r.instalments_paid, 0)" if has("instalments_paid") else "0"
        stmts.append(
            f"INSERT INTO portfolio.instalments AS i (account_id, number, due_date, amount, "
            f"paid_amount) "
            f"SELECT m.account_id, n, (r.first_due_date + (n - 1) * interval '1 month')::date, "
            f"r.instalment_amount, CASE WHEN n <= {paid} THEN r.instalment_amount ELSE 0 END "
            f"FROM imp_rows r JOIN imp_accounts m USING (row_number) "
            f"CROSS JOIN LATERAL generate_series(1, r.instalment_count) n "
            f"WHERE r.instalment_count IS NOT NULL "
            f"ON CONFLICT (account_id, number) DO UPDATE SET due_date = EXCLUDED.due_date, "
            f"amount = EXCLUDED.amount, paid_amount = CASE WHEN EXCLUDED.paid_amount > 0 "
            f"THEN EXCLUDED.paid_amount ELSE LEAST(i.paid_amount, EXCLUDED.amount) END "
            f"WHERE (i.due_date, i.amount, i.paid_amount) IS DISTINCT FROM "
            f"(EXCLUDED.due_date, EXCLUDED.amount, CASE WHEN EXCLUDED.paid_amount > 0 "
            f"THEN EXCLUDED.paid_amount ELSE LEAST(i.paid_amount, EXCLUDED.amount) END)")
        stmts.append(
            "DELETE FROM portfolio.instalments i USING imp_rows r "
            "JOIN imp_accounts m USING (row_number) "
            "WHERE i.account_id = m.account_id AND r.instalment_count IS NOT NULL "
            "AND i.number > r.instalment_count")
    return stmts


#: ``imp_payments``: the movements a chunk (or a payment webhook) inserted, to apply
IMP_PAYMENTS = ("CREATE TEMP TABLE imp_payments (id bigint, account_id bigint, "
                "amount numeric(14, 2), value_date date, reference text) ON COMMIT DROP")

#: what every new payment does, whether it came in a file or a webhook
#: (``portfolio.crediting``): given ``imp_payments``, each lowers its account's balance (never
#: below zero) and pays unpaid instalments, oldest first; ``imp_accounts`` keeps the
#: accounts touched and their stage before.
PAYMENTS_APPLY = (
    "ANALYZE imp_payments",
    # accounts locked in id order: chunks paying the same account queue, never deadlock
    "SELECT a.id FROM portfolio.accounts a WHERE a.id IN (SELECT account_id FROM "
    "imp_payments) ORDER BY a.id FOR NO KEY UPDATE",
    "CREATE TEMP TABLE imp_accounts ON COMMIT DROP AS SELECT a.id AS account_id, "
    "a.stage AS old_stage, p.total FROM (SELECT account_id, sum(amount) AS total "
    "FROM imp_payments GROUP BY account_id) p JOIN portfolio.accounts a ON a.id = p.account_id",
    "ANALYZE imp_accounts",
    "UPDATE portfolio.accounts a SET balance = GREATEST(a.balance - m.total, 0), "
    "updated_at = now() FROM imp_accounts m WHERE a.id = m.account_id",
    "WITH due AS (SELECT i.id, i.amount - i.paid_amount AS rest, m.total, "
    "sum(i.amount - i.paid_amount) OVER (PARTITION BY i.account_id "
    "ORDER BY i.due_date, i.number) AS upto "
    "FROM portfolio.instalments i JOIN imp_accounts m ON m.account_id = i.account_id "
    "WHERE i.paid_amount < i.amount) "
    "UPDATE portfolio.instalments i "
    "SET paid_amount = i.paid_amount + LEAST(due.rest, due.total - (due.upto - due.rest)) "
    "FROM due WHERE i.id = due.id AND due.total > due.upto - due.rest",
)


def payments_merge(plan: Plan) -> list[str]:
    """The statements merging one chunk of a payments file (one transaction): movements
    inserted once per (account, reference) — a re-import inserts nothing —, then
    ``PAYMENTS_APPLY``."""
    job = int(plan.job_id)
    return [
        IMP_PAYMENTS,
        f"WITH ins AS (INSERT INTO portfolio.movements (account_id, kind, amount, value_date, "
        f"reference, import_job_id) "
        f"SELECT account_id, 'payment', amount, value_date, reference, {job} "
        f"FROM {_valid(plan)} ORDER BY account_id, value_date, row_number "
        f"ON CONFLICT (account_id, kind, reference) DO NOTHING "
        f"RETURNING id, account_id, amount, value_date, reference) "
        f"INSERT INTO imp_payments SELECT * FROM ins",
        *PAYMENTS_APPLY,
    ]


# --- events, written straight into the outbox ----------------------------------------------
#
# A chunk announces up to ``chunk_rows`` accounts and one payment_received per new
# movement. Dumping tens of thousands of dicts through marshmallow would cost more than
# the merge itself, so these payloads are built by PostgreSQL in exactly the form the
# contract's schema dumps (decimals as strings, ISO dates, uuid strings); a test checks
# that each loads through ``recaudo_common.contracts`` and dumps back unchanged.

FACTS_JSON = (  # json (text) is built faster than jsonb; the outbox column parses it once
    "json_build_object('account_id', a.id, 'institution_id', a.institution_id, "
    "'debtor_id', a.debtor_id, 'stage', a.stage, 'status_id', a.status_id, "
    "'days_past_due', a.days_past_due, 'balance', a.balance::text, "
    "'overdue_amount', a.overdue_amount::text, 'product', a.product, 'state', ad.state, "
    "'time_zone', COALESCE(ad.time_zone, d.time_zone, i.time_zone), "
    "'next_due_date', to_char((SELECT min(n.due_date) FROM portfolio.instalments n "
    "WHERE n.account_id = a.id AND n.paid_amount < n.amount AND n.due_date >= current_date), "
    f"'YYYY-MM-DD'), 'do_not_contact', {NO_PHONE_TO_CALL})")

ACCOUNTS_CHANGED_SQL = (
    "INSERT INTO portfolio.outbox (event_id, event_type, payload, headers) "
    "SELECT e.id, 'accounts_changed', json_build_object('event_id', e.id::text, "
    "'occurred_at', CAST(:occurred_at AS text), 'accounts', f.items)::jsonb, "
    "CAST(:headers AS jsonb) "
    "FROM (SELECT gen_random_uuid() AS id) e, "
    "(SELECT COALESCE(json_agg(f.facts), '[]'::json) AS items "
    "FROM (SELECT DISTINCT account_id FROM imp_accounts) m CROSS JOIN LATERAL "
    f"(SELECT {FACTS_JSON} AS facts FROM portfolio.accounts a "
    "JOIN portfolio.debtors d ON d.id = a.debtor_id "
    "JOIN portfolio.institutions i ON i.id = a.institution_id "
    "LEFT JOIN LATERAL (SELECT x.state, x.time_zone FROM portfolio.addresses x "
    "WHERE x.debtor_id = d.id ORDER BY x.id LIMIT 1) ad ON true "
    # a per-account probe: flattened, PostgreSQL hashed every account of the institution
    # for each chunk (quadratic over a large import)
    f"WHERE a.id = m.account_id {PROBE}) f) f")

STAGE_CHANGED_SQL = (
    "INSERT INTO portfolio.outbox (event_id, event_type, payload, headers) "
    "SELECT e.id, 'stage_changed', jsonb_build_object('event_id', e.id::text, "
    "'occurred_at', CAST(:occurred_at AS text), 'account_id', e.account_id, "
    "'institution_id', e.institution_id, 'old_stage', e.old_stage, 'new_stage', e.stage), "
    "CAST(:headers AS jsonb) "
    "FROM (SELECT gen_random_uuid() AS id, a.id AS account_id, a.institution_id, m.old_stage, "
    "a.stage FROM (SELECT DISTINCT account_id, old_stage FROM imp_accounts) m "
    "JOIN portfolio.accounts a ON a.id = m.account_id "
    "WHERE m.old_stage IS NOT NULL AND m.old_stage <> a.stage ORDER BY a.id OFFSET 0) e")

PAYMENT_RECEIVED_SQL = (
    "INSERT INTO portfolio.outbox (event_id, event_type, payload, headers) "
    "SELECT e.id, 'payment_received', jsonb_build_object('event_id', e.id::text, "
    "'occurred_at', CAST(:occurred_at AS text), 'account_id', e.account_id, "
    "'institution_id', e.institution_id, 'movement_id', e.movement_id, "
    "'amount', e.amount::text, 'value_date', to_char(e.value_date, 'YYYY-MM-DD'), "
    "'reference', e.reference), CAST(:headers AS jsonb) "
    "FROM (SELECT gen_random_uuid() AS id, p.account_id, a.institution_id, p.id AS movement_id, "
    "p.amount, p.value_date, p.reference FROM imp_payments p "
    "JOIN portfolio.accounts a ON a.id = p.account_id ORDER BY p.id OFFSET 0) e")
