// Soma model files: layer definitions, a model block (inputs and a graph of layers and tensor
// expressions) and a train block (data, loss, optimizer, hyper-parameters). See docs/language.md.
grammar Soma;

file        : decl* EOF ;
decl        : modelDecl | trainDecl | layerDecl ;

modelDecl   : 'model' name=ident '{' modelItem* '}' ;
modelItem   : inputDecl | stmt ;
inputDecl   : 'input' name=ident ':' tensorType ;
tensorType  : dtype=ID '[' INT (',' INT)* ']' ;

// A user-defined layer: formals (the first is its input), parameters with shapes and
// initializers, statements, and the value it returns.
layerDecl   : 'layer' name=ident '(' formal (',' formal)* ')' '{' layerItem* '}' ;
formal      : name=ident (':' expr)? ;
layerItem   : paramDecl | returnStmt | stmt ;
paramDecl   : 'param' name=ident ':' '[' expr (',' expr)* ']' ('=' init=expr)? ;
returnStmt  : 'return' expr ;

// `name = expr` names a value; a statement without a name is a chain of layers applied to the
// previous statement's value (or the input).
stmt        : (target=ident '=')? expr ;

trainDecl   : 'train' name=ident '{' trainItem* '}' ;
trainItem   : dataDecl | setting ;
dataDecl    : 'data' name=ident '=' expr ;
setting     : key=ident '=' expr ;

// Earlier alternatives bind tighter: calls and literals, unary minus, * / @, + -, then ->.
expr        : '(' expr ')'                        # parenExpr
            | callee=ident '(' argList? ')'       # callExpr
            | '[' (expr (',' expr)*)? ']'         # listExpr
            | (INT | FLOAT)                       # numberExpr
            | STRING                              # stringExpr
            | ident                               # nameExpr
            | '-' expr                            # negExpr
            | expr op=('*' | '/' | '@') expr      # mulExpr
            | expr op=('+' | '-') expr            # addExpr
            | expr '->' expr                      # chainExpr
            ;
argList     : arg (',' arg)* ;
arg         : (name=ident ':')? expr ;
// Keywords are only special where they start a declaration; elsewhere they are plain names.
ident       : ID | 'model' | 'input' | 'train' | 'data' | 'layer' ;

ID          : [a-zA-Z_] [a-zA-Z_0-9]* ;
INT         : [0-9]+ ;
FLOAT       : [0-9]+ '.' [0-9]* EXP? | '.' [0-9]+ EXP? | [0-9]+ EXP ;
fragment EXP : [eE] [+-]? [0-9]+ ;
STRING      : '"' (~["\\\r\n] | '\\' .)* '"' ;
LINE_COMMENT: ('#' | '//') ~[\r\n]* -> skip ;
BLOCK_COMMENT: '/*' .*? '*/' -> skip ;
WS          : [ \t\r\n]+ -> skip ;
