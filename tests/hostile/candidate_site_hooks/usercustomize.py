import builtins
builtins.EVORAG_HOSTILE_SITE = 'ran'
