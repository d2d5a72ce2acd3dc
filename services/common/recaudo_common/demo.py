"""Facts the demo data of several services agree on (ids are fixed so that each
service's seed can refer to the others' rows without reading their schemas)."""

#: (id, code, name) of the demo creditor institutions seeded by the portfolio service
INSTITUTIONS = (
    (1, "BANCOMER", "BBVA Bancomer"),
    (2, "CREDIMAS", "Credimás Financiera"),
    (3, "AUTOFIN", "Autofinanciamiento del Centro"),
)
#: the demo institutions' zone (the portfolio's default): "today" of the demo's history
ZONE = "America/Mexico_City"
#: the institution the demo creditor user ``cliente`` is bound to
CLIENT_INSTITUTION_ID = 1
DEMO_PASSWORD = "recaudo-demo"
#: fixed ids of the demo users (the auth service seeds them with these ids)
USER_IDS = {"admin": 1, "supervisor": 2, "gestor1": 3, "gestor2": 4, "abogado": 5, "cliente": 6}
#: how many demo debtors the portfolio service generates (about one account each)
DEBTORS = 5000
#: the institutions each demo collector works (their scope in auth)
GESTOR_INSTITUTIONS = {"gestor1": (1, 2), "gestor2": (1, 3)}
#: institution -> the demo team of its collectors (those of GESTOR_INSTITUTIONS who work it),
#: supervised by ``supervisor``: auth seeds them, the institution's demo strategy is served by it
TEAMS = {1: "Equipo Centro", 2: "Equipo Credimás", 3: "Equipo Autofin"}
TEAM = TEAMS[1]
