// Soma model files: a model block (input and layers) and a train block
// (data, loss, optimizer, hyper-parameters). See docs/language.md.
grammar Soma;

file        : decl* EOF ;
decl        : modelDecl | trainDecl ;

modelDecl   : 'model' name=ident '{' modelItem* '}' ;
modelItem   : inputDecl | layerChain ;
inputDecl   : 'input' name=ident ':' tensorType ;
tensorType  : dtype=ID '[' INT (',' INT)* ']' ;
layerChain  : layer ('->' layer)* ;
layer       : name=ID ('(' argList? ')')? ;

trainDecl   : 'train' name=ident '{' trainItem* '}' ;
trainItem   : dataDecl | setting ;
dataDecl    : 'data' name=ident '=' expr ;
setting     : key=ident '=' expr ;

expr        : '-' expr                        # negExpr
            | callee=ID '(' argList? ')'      # callExpr
            | (INT | FLOAT)                   # numberExpr
            | STRING                          # stringExpr
            | '[' (expr (',' expr)*)? ']'     # listExpr
            | ident                           # nameExpr
            ;
argList     : arg (',' arg)* ;
arg         : (name=ident ':')? expr ;
// Keywords are only special where they start a declaration; elsewhere they are plain names.
ident       : ID | 'model' | 'input' | 'train' | 'data' ;

ID          : [a-zA-Z_] [a-zA-Z_0-9]* ;
INT         : [0-9]+ ;
FLOAT       : [0-9]+ '.' [0-9]* EXP? | '.' [0-9]+ EXP? | [0-9]+ EXP ;
fragment EXP : [eE] [+-]? [0-9]+ ;
STRING      : '"' (~["\\\r\n] | '\\' .)* '"' ;
LINE_COMMENT: ('#' | '//') ~[\r\n]* -> skip ;
BLOCK_COMMENT: '/*' .*? '*/' -> skip ;
WS          : [ \t\r\n]+ -> skip ;
