import builtins
builtins.EVORAG_HOSTILE_SITE = 'ran'
print('EVORAG-HOSTILE sitecustomize: info ran')
