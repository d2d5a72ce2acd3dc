"""Facts the demo data of several services agree on (ids are fixed so that each
service's seed can refer to the others' rows without reading their schemas)."""

#: (id, code, name) of the demo creditor institutions seeded by the portfolio service
INSTITUTIONS = (
    (1, "BANCOMER", "BBVA Bancomer"),
    (2, "CREDIMAS", "Credimás Financiera"),
    (3, "AUTOFIN", "Autofinanciamiento del Centro"),
)
#: the institution the demo creditor user ``cliente`` is bound to
CLIENT_INSTITUTION_ID = 1
DEMO_PASSWORD = "recaudo-demo"
#: fixed ids of the demo users (the auth service seeds them with these ids)
USER_IDS = {"admin": 1, "supervisor": 2, "gestor1": 3, "gestor2": 4, "abogado": 5, "cliente": 6}
#: how many demo debtors the portfolio service generates (about one account each)
DEBTORS = 5000
#: the demo collectors' team (auth seeds it; the demo strategies' queues are served by it)
TEAM = "Equipo Centro"
